"""Divergence is caught: an exploding learning rate and forced NaN/inf weights roll back to the last good state."""
import math

import pytest
import torch

from test_session import open_session, sentences, suggestions


@pytest.fixture
def good(tmp_path):
    session = open_session(tmp_path)
    for s in sentences(12):
        session.commit_sentences([s])
    yield session
    session.close()


def _assert_unchanged(session, deltas, words):
    after = session.learner.deltas()
    assert set(after) == set(deltas) and all(torch.equal(after[k], deltas[k]) for k in deltas)
    assert suggestions(session) == words
    assert all(math.isfinite(p.sum().item()) for p in session.predictor.model.parameters())


def test_an_exploding_learning_rate_is_rolled_back(good):
    deltas, words, rolled = good.learner.deltas(), suggestions(good), good.stats.rounds_rolled_back
    for group in good.learner.plans.ensure().optimizer.param_groups:
        group["lr"] = 1e4
    good.commit_sentences(["Yesterday Brenna walked to the lake after work."])
    assert good.stats.rounds_rolled_back == rolled + 1
    _assert_unchanged(good, deltas, words)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_weights_after_a_step_are_rolled_back(good, monkeypatch, bad):
    deltas, words, rolled = good.learner.deltas(), suggestions(good), good.stats.rounds_rolled_back
    plan = good.learner.plans.ensure()
    step = plan.step

    def poisoned(batch, *args, **kwargs):
        report = step(batch, *args, **kwargs)
        with torch.no_grad():
            next(iter(plan.trainable.values())).view(-1)[0] = bad
        return report

    monkeypatch.setattr(plan, "step", poisoned)
    good.commit_sentences(["Yesterday Brenna walked to the lake after work."])
    assert good.stats.rounds_rolled_back == rolled + 1
    _assert_unchanged(good, deltas, words)
