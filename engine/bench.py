"""`pocketkb bench engine`: step time and training memory of every scheme against plain PyTorch references.

References, written plainly: eager full fine-tuning, and naive freezing (`requires_grad=False`) of the sparse scheme's layers.
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from engine.dyneval import ModelReference
from engine.memory import PeakRssGrowth, SavedTensorCounter, optimizer_state_bytes, tensor_bytes
from engine.optimizer import OptimizerConfig
from engine.plan import StepReport, TrainPlan, compile_plan
from engine.scheme import UpdateScheme
from engine.staged import StagedModel

FULL_REFERENCE = "pytorch full fine-tuning"
NAIVE_REFERENCE = "naive freezing of {}"


@dataclass(frozen=True)
class FixedCost:
    """What a way of training holds whatever the step: trainable parameters, model, gradient and optimizer bytes."""

    trainable_parameters: int
    model_bytes: int
    gradient_bytes: int
    optimizer_bytes: int


class PlainTraining:
    """Eager PyTorch: the whole forward on every position, the loss on the newest positions `scheme` asks for."""

    def __init__(self, staged: StagedModel, names: list[str] | None, scheme: UpdateScheme, optimizer: OptimizerConfig,
                 reference: ModelReference | None = None):
        model = staged.module
        names = [n for n, _ in model.named_parameters()] if names is None else names
        self.staged, self.model, self.trainable = staged, model, [model.get_parameter(n) for n in names]
        model.requires_grad_(False)
        for p in self.trainable:
            p.requires_grad_(True)
        self.scheme = scheme
        references = [reference.tensor(n) for n in names] if optimizer.kind == "dyneval" else None
        self.optimizer = optimizer.build(self.trainable, references)
        self._persistent = [*model.parameters(), *model.buffers()]
        self._held = (0, 0)  # gradient and optimizer-state bytes that existed at the last step

    def step(self, batch: torch.Tensor, measure_peak: bool = False, positions: int | None = None) -> StepReport:
        peak = PeakRssGrowth() if measure_peak else nullcontext()
        with peak:
            start = time.perf_counter()
            inputs, targets = self.staged.split_batch(batch)
            with SavedTensorCounter(self._persistent) as saved:
                logits = self.model(inputs)
                keep = positions or self.scheme.loss_positions(targets.shape[1])
                loss = self.staged.loss(logits[:, -keep:], targets[:, -keep:])
            loss.backward()
            grads = tensor_bytes(p.grad for p in self.trainable if p.grad is not None)
            self.optimizer.step()
            self._held = (grads, optimizer_state_bytes(self.optimizer))
            self.optimizer.zero_grad(set_to_none=True)
            step_ms = (time.perf_counter() - start) * 1000
        return StepReport(loss.item(), step_ms, saved.bytes, 0, 0, peak.bytes if measure_peak else None)

    def fixed_cost(self) -> FixedCost:
        """As the last step held them: the model, its gradients and the optimizer's state."""
        return FixedCost(sum(p.numel() for p in self.trainable), tensor_bytes(self._persistent), *self._held)


def _touched_parameter_names(plan: TrainPlan) -> list[str]:
    """The whole tensors a plan trains: its trained parameters and the full weights of split or adapted Linears."""
    names = {id(p): name for name, p in plan.staged.module.named_parameters()}
    touched = [*plan.trainable.values(), *(adapter.linear.weight for adapter in plan.adapters.values())]
    return [names[id(p)] for p in touched if id(p) in names]


@dataclass
class _Runner:
    name: str
    step: Callable[..., StepReport]
    cost: Callable[[], FixedCost]  # what it holds, read after its steps
    reports: list[StepReport]


def _plan_runner(staged: StagedModel, scheme: UpdateScheme, optimizer: OptimizerConfig,
                 reference: ModelReference | None) -> tuple[_Runner, TrainPlan]:
    plan = compile_plan(staged, scheme, optimizer, reference=reference)
    return _Runner(scheme.name, plan.step, lambda: _plan_cost(plan), []), plan


def _plan_cost(plan: TrainPlan) -> FixedCost:
    """What the plan holds; gradients kept factored are counted as its last step measured them."""
    memory = plan.memory()
    return FixedCost(memory.trainable_parameters, memory.parameter_bytes, memory.gradient_bytes,
                     memory.optimizer_bytes)


def _plain_runner(name: str, staged: StagedModel, names: list[str] | None, scheme: UpdateScheme,
                  optimizer: OptimizerConfig, reference: ModelReference | None) -> _Runner:
    """Plain training of `staged`'s module: the named parameters train, or all of them for None."""
    plain = PlainTraining(staged, names, scheme, optimizer, reference)
    return _Runner(name, plain.step, plain.fixed_cost, [])


def _row(runner: _Runner, warmup: int) -> dict:
    timed = runner.reports[warmup:-1]
    fixed = runner.cost()
    saved = runner.reports[-2].saved_bytes
    return {"name": runner.name, "step_ms": statistics.median(r.step_ms for r in timed),
            "first_step_ms": runner.reports[0].step_ms, **asdict(fixed), "saved_bytes": saved,
            "training_bytes": saved + fixed.gradient_bytes + fixed.optimizer_bytes,
            "peak_rss_growth": runner.reports[-1].peak_rss_growth, "loss": runner.reports[-2].loss}


def run_engine_bench(fresh: Callable[[], StagedModel], batch: torch.Tensor | list[torch.Tensor], schemes: list[UpdateScheme],
                     repeats: int = 20, optimizer_of: Callable[[str], OptimizerConfig] | None = None,
                     naive_of: str = "sparse", warmup: int = 2, reference: ModelReference | None = None,
                     positions: int | None = None) -> dict:
    """Time `repeats` steps of every scheme and reference on one fixed batch, or along a stream of rows (a list,
    taken in turn, as the learner's segments come: each step's loss on its newest `positions`), round-robin so
    load hits all alike.

    `optimizer_of(scheme name)` is each one's optimizer (default AdamW; the full reference takes "full"'s, naive
    freezing that of the scheme it freezes for); `reference` is what a dynamic-evaluation optimizer needs. Each
    runs on its own model, staged, from `fresh()`. The last step of each measures peak RSS growth. Prints a table,
    returns the rows with ratios to full fine-tuning (and to naive freezing for `naive_of`).
    """
    optimizer_of = optimizer_of or (lambda name: OptimizerConfig())
    runners, plans = [], {}
    runners.append(_plain_runner(FULL_REFERENCE, fresh(), None, UpdateScheme(FULL_REFERENCE), optimizer_of("full"),
                                 reference))
    for scheme in schemes:
        runner, plans[scheme.name] = _plan_runner(fresh(), scheme, optimizer_of(scheme.name), reference)
        runners.append(runner)
    if naive_of in plans:
        plan = plans[naive_of]
        runners.append(_plain_runner(NAIVE_REFERENCE.format(naive_of), fresh(), _touched_parameter_names(plan),
                                     plan.scheme, optimizer_of(naive_of), reference))
    batches = batch if isinstance(batch, list) else [batch]
    for i in range(warmup + repeats):
        for runner in runners:
            runner.reports.append(runner.step(batches[i % len(batches)], positions=positions))
    for runner in runners:
        runner.reports.append(runner.step(batches[(warmup + repeats) % len(batches)], measure_peak=True,
                                          positions=positions))
    rows = [_row(runner, warmup) for runner in runners]  # what each held at its last step
    for plan in plans.values():
        plan.close()
    _add_ratios(rows, naive_of)
    kinds = sorted({optimizer_of(name).kind for name in ("full", *plans)})
    shape = list(batches[0].shape) if len(batches) == 1 else f"a stream of {len(batches)} rows, loss on {positions}"
    result = {"batch": shape, "threads": torch.get_num_threads(), "repeats": repeats,
              "optimizer": "/".join(kinds), "rows": rows}
    print(format_bench(result))
    return result


def _add_ratios(rows: list[dict], naive_of: str) -> None:
    full = rows[0]
    naive = next((r for r in rows if r["name"] == NAIVE_REFERENCE.format(naive_of)), None)
    for row in rows:
        row["speedup_vs_full"] = full["step_ms"] / row["step_ms"]
        row["memory_ratio_vs_full"] = full["training_bytes"] / max(row["training_bytes"], 1)
        if naive is not None:
            row["speedup_vs_naive"] = naive["step_ms"] / row["step_ms"]


def format_bench(result: dict) -> str:
    kib = 1024
    lines = [f"engine bench: batch {result['batch']}, {result['threads']} thread(s), {result['repeats']} steps, "
             f"{result['optimizer']}; memory = saved activations + gradients + optimizer state",
             f"{'scheme':<34} {'step ms':>8} {'x full':>7} {'x naive':>8} {'train KiB':>10} {'x less':>7} "
             f"{'saved KiB':>10} {'peak RSS KiB':>13} {'model KiB':>10} {'trainable':>10}"]
    for r in result["rows"]:
        naive = f"{r['speedup_vs_naive']:>8.2f}" if "speedup_vs_naive" in r else f"{'':>8}"
        peak = "n/a" if r["peak_rss_growth"] is None else f"{r['peak_rss_growth'] / kib:.0f}"
        lines.append(f"{r['name']:<34} {r['step_ms']:>8.2f} {r['speedup_vs_full']:>7.2f} {naive} "
                     f"{r['training_bytes'] / kib:>10.0f} {r['memory_ratio_vs_full']:>7.2f} "
                     f"{r['saved_bytes'] / kib:>10.0f} {peak:>13} {r['model_bytes'] / kib:>10.0f} "
                     f"{r['trainable_parameters']:>10,}")
    return "\n".join(lines)
