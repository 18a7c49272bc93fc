"""A remembered context (scheme.remember_context): steps run on the newest positions alone, the context before them
is a memory extended as a stream grows, kept across the plan's own updates and dropped when weights change otherwise.
"""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from models.gpt_stages import staged_lm
from engine.optimizer import OptimizerConfig
from engine.plan import compile_plan
from engine.scheme import PartRule, UpdateScheme
from test_engine_fixtures import SHIPPED_SPARSE, tiny_gpt, token_batch

EMBEDDING = UpdateScheme("embedding", (PartRule(("wte",), weight=1.0),), remember_context=True)


def _counting(staged):
    """The staged model, with a record of how many positions each `remember` call ran."""
    calls = []

    def remember(inputs, memory):
        calls.append(inputs.shape[1])
        return staged.remember(inputs, memory)
    return dataclasses.replace(staged, remember=remember), calls


def _stream(length=30, seed=4):
    return token_batch(rows=1, length=length, seed=seed)[0].tolist()


def _row(tokens):
    return torch.tensor([tokens])


def test_the_shipped_sparse_scheme_remembers_its_context():
    assert SHIPPED_SPARSE.remember_context


def test_a_growing_stream_grows_the_memory_from_each_steps_own_forward():
    stream = _stream()
    staged, calls = _counting(staged_lm(tiny_gpt()))
    with compile_plan(staged, EMBEDDING) as plan:
        plan.step(_row(stream[:13]), positions=4)   # context: 8 positions
        plan.step(_row(stream[:17]), positions=4)   # the 4 before the new segment: the last step's own positions
        plan.step(_row(stream[:21]), positions=4)
        assert calls == [8]
        assert plan.memory().cache_bytes > 0  # the memory is reported with the caches
        plan.step(_row(stream[5:21]), positions=4)  # the window moved: computed again
        assert calls[-1] == 11


def test_the_first_step_scores_the_newest_positions_as_the_whole_model_does():
    model, stream = tiny_gpt(), _stream()
    row = _row(stream[:17])
    with torch.no_grad():
        expected = F.cross_entropy(model(row[:, :-1])[0, -4:], row[0, -4:]).item()
    with compile_plan(staged_lm(model), EMBEDDING) as plan:
        assert plan.step(row, positions=4).loss == pytest.approx(expected, abs=1e-5)


def test_the_memory_keeps_the_values_of_its_time_across_the_plans_own_steps():
    """Transformer-XL's memory: after an update, remembered positions are not recomputed with the new weights."""
    model, stream = tiny_gpt(), _stream()
    staged, calls = _counting(staged_lm(model))
    with compile_plan(staged, EMBEDDING) as plan:
        for end in (13, 17):
            plan.step(_row(stream[:end]), positions=4)
        remembered = plan.evaluate_rows(_row(stream[:21]), positions=4)[0]
        assert calls == [8]
        plan.forget_context()
        fresh = plan.evaluate_rows(_row(stream[:21]), positions=4)[0]
        assert calls[-1] == 16
    assert remembered != pytest.approx(fresh, abs=1e-7)


@pytest.mark.parametrize("change", ["frozen weight", "restore"])
def test_weights_changed_outside_the_plan_drop_the_memory(change):
    model, stream = tiny_gpt(), _stream()
    staged, calls = _counting(staged_lm(model))
    with compile_plan(staged, EMBEDDING) as plan:
        plan.step(_row(stream[:13]), positions=4)
        if change == "frozen weight":
            with torch.no_grad():
                model.blocks[0].attn.c_attn.weight.mul_(0.5)
        else:
            plan.restore(plan.snapshot())
        plan.step(_row(stream[:17]), positions=4)
        assert calls == [8, 12]


def test_with_weights_that_do_not_move_the_grown_memory_scores_as_the_whole_model_does():
    """The memory a step grows from its own forward is the one a fresh pass computes, when nothing was learned; a
    check on a segment already stepped on cuts the memory back rather than computing it."""
    model, stream = tiny_gpt(), _stream()
    staged, calls = _counting(staged_lm(model))

    def whole(end):
        row = _row(stream[:end])
        with torch.no_grad():
            return F.cross_entropy(model(row[:, :-1])[0, -4:], row[0, -4:]).item()
    with compile_plan(staged, EMBEDDING, OptimizerConfig(lr=0.0, weight_decay=0.0)) as plan:
        for end in (9, 13, 17, 21, 25):
            assert plan.step(_row(stream[:end]), positions=4).loss == pytest.approx(whole(end), abs=1e-5)
        assert plan.evaluate_rows(_row(stream[:25]), positions=4)[0] == pytest.approx(whole(25), abs=1e-5)
        assert plan.step(_row(stream[:29]), positions=4).loss == pytest.approx(whole(29), abs=1e-5)
    assert calls == [4]


def test_the_memory_is_not_counted_as_training_memory():
    """What a step saves for backward covers the newest positions; a longer remembered context adds nothing."""
    stream = _stream(length=31)
    saved = []
    for context in (4, 24):
        with compile_plan(staged_lm(tiny_gpt()), EMBEDDING) as plan:
            saved.append(plan.step(_row(stream[:context + 5]), positions=4).saved_bytes)
    assert saved[0] > 0
    assert saved[1] < 1.5 * saved[0]


def test_a_scheme_that_remembers_needs_a_model_that_can():
    staged = dataclasses.replace(staged_lm(tiny_gpt()), remember=None)
    with pytest.raises(ValueError, match="remember"):
        compile_plan(staged, EMBEDDING)
