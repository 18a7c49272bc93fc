"""The engine benchmark runs every scheme beside plain PyTorch references and reports ratios (tiny model, few steps)."""
import copy
from dataclasses import replace

import torch

from engine.bench import FULL_REFERENCE, NAIVE_REFERENCE, run_engine_bench
from test_engine_fixtures import MODE_SCHEMES, SHIPPED_SPARSE, tiny_gpt, token_batch


def test_bench_reports_every_scheme_and_both_references(capsys):
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    int8 = replace(SHIPPED_SPARSE, name="sparse-int8", frozen_int8=True)
    result = run_engine_bench(lambda: copy.deepcopy(model).staged(), token_batch(rows=4, length=17), [*MODE_SCHEMES.values(), SHIPPED_SPARSE, int8],
                              repeats=2, warmup=1)
    names = [row["name"] for row in result["rows"]]
    assert names == [FULL_REFERENCE, *MODE_SCHEMES, "sparse", "sparse-int8", NAIVE_REFERENCE.format("sparse")]
    rows = {row["name"]: row for row in result["rows"]}
    full, engine_full, sparse = rows[FULL_REFERENCE], rows["full"], rows["sparse"]
    assert engine_full["training_bytes"] == full["training_bytes"]
    assert sparse["training_bytes"] < full["training_bytes"] / 3
    assert rows["sparse-int8"]["model_bytes"] < sparse["model_bytes"]
    assert all(row["step_ms"] > 0 and "speedup_vs_naive" in row for row in result["rows"])
    assert "naive freezing of sparse" in capsys.readouterr().out
    assert all((model.state_dict()[k] == v).all() for k, v in before.items())  # the caller's model is untouched


def test_bench_steps_each_scheme_with_its_own_optimizer():
    from engine.dyneval import ModelReference
    from engine.optimizer import OptimizerConfig

    model = tiny_gpt()
    factors = {name: (torch.full(p.shape[:1], 0.1), torch.full(p.shape[1:], 0.1) if p.dim() == 2 else None)
               for name, p in model.named_parameters()}
    optimizers = {"full": OptimizerConfig(kind="dyneval", lr=1e-3), "sparse": OptimizerConfig(kind="dyneval", lr=1e-3)}
    result = run_engine_bench(lambda: copy.deepcopy(model).staged(), token_batch(rows=4, length=17), [MODE_SCHEMES["full"], SHIPPED_SPARSE],
                              repeats=2, warmup=1, optimizer_of=optimizers.__getitem__,
                              reference=ModelReference.of(model, factors))
    rows = {row["name"]: row for row in result["rows"]}
    assert result["optimizer"] == "dyneval"
    assert rows[FULL_REFERENCE]["optimizer_bytes"] > 0  # the rule's factored statistics, not AdamW's moments
    assert rows[FULL_REFERENCE]["optimizer_bytes"] < rows[FULL_REFERENCE]["gradient_bytes"]
    assert rows["full"]["loss"] == rows[FULL_REFERENCE]["loss"]  # the same rule steps both alike
