"""Training plans: frozen tensors stay bit-identical, the cached prefix changes nothing, memory is measured as
planned, deltas restore exactly, and the model's own weights (hence plain inference) carry what was trained."""

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from models.gpt_stages import staged_lm
from engine.plan import compile_plan
from engine.scheme import PartRule, UpdateScheme
from engine.staged import sequential_model
from test_engine_fixtures import ALL_SCHEMES, CHANNELS_SPARSE, DEEP_SPARSE, mlp, shipped_scheme, tiny_gpt, token_batch, vector_batch


def _batches(count, seed=10):
    return [token_batch(seed=seed + i) for i in range(count)]


def test_frozen_tensors_are_bit_identical_after_100_steps():
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with compile_plan(staged_lm(model), DEEP_SPARSE) as plan:
        for batch in _batches(4) * 25:
            plan.step(batch)
        trained = {k for k in plan.trainable if not k.endswith("columns")}
        split = {path: adapter.channels for path, adapter in plan.adapters.items()}
    after = model.state_dict()
    for name, value in before.items():
        module_path = name.rpartition(".")[0]
        if name in trained:
            assert not torch.equal(after[name], value), name
        elif module_path in split and name.endswith("weight"):
            frozen = torch.ones(value.shape[1], dtype=torch.bool)
            frozen[split[module_path]] = False
            assert torch.equal(after[name][:, frozen], value[:, frozen]), name
            assert not torch.equal(after[name][:, ~frozen], value[:, ~frozen]), name
        else:
            assert torch.equal(after[name], value), name


@pytest.mark.parametrize("scheme", [CHANNELS_SPARSE, DEEP_SPARSE, shipped_scheme("last-block")], ids=lambda s: s.name)
def test_cached_prefix_gives_the_same_losses_and_updates(scheme):
    cached_model, plain_model = tiny_gpt(), tiny_gpt()
    batches = _batches(2) * 3
    with compile_plan(staged_lm(cached_model), scheme) as cached, \
            compile_plan(staged_lm(plain_model), scheme, cache_bytes=0) as plain:
        assert cached.cut > 0
        reports = [(cached.step(b), plain.step(b)) for b in batches]
        for c, p in reports:
            assert c.loss == pytest.approx(p.loss, abs=1e-6)
        assert [c.cache_hits for c, _ in reports] == [0, 0, 4, 4, 4, 4]
        assert all(p.cache_hits == 0 for _, p in reports)
        _, cached_grads = cached.gradients(batches[0])
        _, plain_grads = plain.gradients(batches[0])
        for name in cached_grads:
            torch.testing.assert_close(cached_grads[name], plain_grads[name], atol=1e-6, rtol=1e-6)
        for name, value in cached.snapshot().items():
            torch.testing.assert_close(value, plain.snapshot()[name], atol=1e-6, rtol=1e-6)


def test_cache_is_dropped_when_weights_below_the_cut_change():
    model = tiny_gpt()
    batch = token_batch()
    with compile_plan(staged_lm(model), CHANNELS_SPARSE) as plan:
        plan.step(batch)
        assert plan.step(batch).cache_hits == 4
        stale = plan.evaluate(batch)
        with torch.no_grad():
            model.wpe.weight.add_(torch.randn_like(model.wpe.weight))
        expected = plan.evaluate(batch)
        report = plan.step(batch)
        assert report.cache_hits == 0
        assert report.loss == pytest.approx(expected, abs=1e-6) and abs(expected - stale) > 1e-3
        assert plan.step(batch).cache_hits == 4


def test_samples_can_be_keyed_by_caller_ids():
    batch = token_batch()
    with compile_plan(staged_lm(tiny_gpt()), CHANNELS_SPARSE) as plan:
        plan.step(batch, sample_ids=["a", "b", "c", "d"])
        assert plan.step(batch[[1, 0]], sample_ids=["b", "a"]).cache_hits == 2


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=lambda s: s.name)
def test_measured_saved_bytes_are_within_ten_percent_of_the_plan(scheme):
    batch = token_batch(rows=8, length=25)
    with compile_plan(staged_lm(tiny_gpt()), scheme) as plan:
        planned = plan.memory(batch).planned_saved_bytes
        plan.step(batch)
        measured = plan.step(batch).saved_bytes
        assert abs(measured - planned) <= 0.1 * planned
        assert plan.memory().measured_saved_bytes == measured


def test_memory_plan_counts_only_trained_tensors():
    model = tiny_gpt()
    batch = token_batch()
    with compile_plan(staged_lm(model), CHANNELS_SPARSE) as plan:
        plan.step(batch)
        memory = plan.memory(batch)
        state = plan.optimizer.state
        assert {id(p) for p in state} == {id(p) for p in plan.trainable.values()}
        # the tensors that exist: AdamW's two moments and its step counts, and a gradient the size of each tensor
        assert memory.optimizer_bytes == sum(t.nbytes for s in state.values() for t in s.values())
        assert 2 * memory.trainable_bytes < memory.optimizer_bytes < 2 * memory.trainable_bytes + 8 * len(state)
        assert memory.gradient_bytes == memory.trainable_bytes == 4 * memory.trainable_parameters
        assert memory.training_bytes == memory.measured_saved_bytes + memory.trainable_bytes + memory.optimizer_bytes
        assert memory.cache_bytes > 0
    with compile_plan(staged_lm(tiny_gpt()), shipped_scheme("full")) as full:
        full.step(batch)
        assert full.memory().training_bytes > 5 * memory.training_bytes


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=lambda s: s.name)
def test_delta_save_and_load_restores_the_exact_weights(scheme):
    trained_model = tiny_gpt()
    with compile_plan(staged_lm(trained_model), scheme) as plan:
        for batch in _batches(3):
            plan.step(batch)
        stored = save_safetensors(plan.snapshot())
    fresh = tiny_gpt()
    with compile_plan(staged_lm(fresh), scheme) as plan:
        plan.restore(load_safetensors(stored))
    for name, value in trained_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


def test_a_delta_from_other_channels_is_refused():
    with compile_plan(staged_lm(tiny_gpt(seed=0)), CHANNELS_SPARSE) as plan:
        delta = plan.snapshot()
    with compile_plan(staged_lm(tiny_gpt(seed=5)), CHANNELS_SPARSE) as plan, pytest.raises(ValueError, match="channels"):
        plan.restore(delta)


def test_plain_inference_sees_the_trained_weights():
    model = tiny_gpt()
    idx = token_batch()[:, :12]
    with compile_plan(staged_lm(model), DEEP_SPARSE) as plan:
        for batch in _batches(3):
            plan.step(batch)
        delta = plan.snapshot()
        with torch.no_grad():
            during = model(idx)
    by_hand = tiny_gpt()  # the untouched model with the delta put in by hand
    with torch.no_grad():
        for name, value in delta.items():
            if name.endswith("weight.columns"):
                weight = by_hand.get_parameter(name.removesuffix(".columns"))
                weight[:, delta[name.replace("columns", "channels")]] = value
            elif not name.endswith("channels"):
                by_hand.get_parameter(name).copy_(value)
        expected = by_hand(idx)
        cached_logits, _ = model.decode(idx)
    assert torch.equal(during, expected)
    assert torch.allclose(cached_logits, expected, atol=1e-5)


def test_lora_is_merged_into_the_weight():
    model = tiny_gpt()
    with compile_plan(staged_lm(model), shipped_scheme("lora")) as plan:
        for batch in _batches(3):
            plan.step(batch)
        adapter = plan.adapters["blocks.1.attn.c_attn"]
        merged = adapter.base + adapter.scale * adapter.lora_b @ adapter.lora_a
    torch.testing.assert_close(model.blocks[1].attn.c_attn.weight, merged, atol=1e-6, rtol=1e-6)


def test_close_gives_back_forward_and_gradient_flags():
    model = mlp()
    model[0].weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    plan = compile_plan(sequential_model(model), UpdateScheme("split", (PartRule(blocks="2", weight=0.5),)))
    assert "forward" in vars(model[2])
    plan.step(vector_batch((12,), 5))
    plan.close()
    assert "forward" not in vars(model[2])
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_a_scheme_that_trains_nothing_here_is_refused():
    model = mlp()
    with pytest.raises(ValueError, match="selects no tensor"):
        compile_plan(sequential_model(model), CHANNELS_SPARSE)
    assert all(p.requires_grad for p in model.parameters())


def test_loss_on_newest_positions_needs_positions():
    model = mlp()
    with pytest.raises(ValueError, match="positions"):
        compile_plan(sequential_model(model), UpdateScheme("x", (PartRule(blocks="2", weight=0.5),),
                                                           loss_last_fraction=0.5))
    assert "forward" not in vars(model[2]) and all(p.requires_grad for p in model.parameters())
