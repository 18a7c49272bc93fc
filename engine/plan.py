"""Compiling an update scheme against a staged model into a TrainPlan, and running its lean training steps.

Everything is decided once: which tensors train and where backprop stops (`Selection`), the forward to the loss with
its cached prefix or remembered context (`PlanForward`), and the optimizer.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from engine.dyneval import ModelReference, TensorReference
from engine.memory import MemoryReport, PeakRssGrowth, optimizer_state_bytes, tensor_bytes
from engine.optimizer import OptimizerConfig
from engine.plan_forward import PlanForward
from engine.scheme import UpdateScheme
from engine.selection import Selection
from engine.staged import Batch, StagedModel

DEFAULT_CACHE_BYTES = 64 << 20


@dataclass(frozen=True)
class StepReport:
    loss: float
    step_ms: float
    saved_bytes: int
    cache_hits: int
    cache_misses: int
    peak_rss_growth: int | None = None


class TrainPlan:
    """A compiled scheme: call `step(batch)` repeatedly; `memory()` reports; `snapshot()` and `restore()`
    keep and bring back the trained tensors' values.

    After every step the model's own tensors hold the trained weights (split and LoRA weights are written back), so
    plain inference on the module sees them; a caller that runs inference in another thread must not let it overlap
    a step. `close()` gives the module back its own forward and gradient flags. The module's train/eval mode is the
    caller's; use eval mode for modules with batch statistics (the prefix cache is per sample).
    """

    def __init__(self, staged: StagedModel, scheme: UpdateScheme, optimizer: OptimizerConfig | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, reference: ModelReference | None = None):
        self.staged, self.scheme = staged, scheme
        self.optimizer_config = optimizer or OptimizerConfig()
        self.reference = reference
        self.selection = Selection(staged, scheme)
        module, selection = staged.module, self.selection
        # what trains (released in place by `close`)
        self.trainable, self.adapters, self.int8 = selection.trainable, selection.adapters, selection.int8
        self.factored, self.cut = selection.factored, selection.cut
        self._persistent = [*module.parameters(), *module.buffers(), *selection.trainable.values(),
                            *(t for a in selection.adapters.values() for t in a.extra_tensors().values()),
                            *(t for q in selection.int8.values() for t in q.tensors())]
        self.forward = PlanForward(staged, scheme, selection.cut, selection.slice_at, cache_bytes, self._persistent)
        self.optimizer = self._build_optimizer()
        self._last: StepReport | None = None
        self._factored_bytes = 0  # what the factored gradients held at the last step
        self._held: tuple[int, int] | None = None  # gradient and optimizer-state bytes that existed at the last step

    def held_tensors(self) -> list[torch.Tensor]:
        """The tensors the plan keeps between steps: the module's, the trained ones, and split weights, adapters and
        int8 copies."""
        return list(self._persistent)

    def forget_context(self) -> None:
        """Drop the remembered context: the next step computes it again with the weights of that moment."""
        self.forward.forget_context()

    # --- compiling -------------------------------------------------------------------------------------------
    def _build_optimizer(self) -> torch.optim.Optimizer:
        scales = [self.selection.lr_scales[name] for name in self.trainable]
        if self.optimizer_config.kind != "dyneval":
            return self.optimizer_config.build(self.trainable.values(), scales=scales)
        if self.reference is None:
            raise ValueError("a dynamic-evaluation plan needs the base weights and their gradient statistics")
        factored = {id(self.trainable[name]): sink for name, sink in self.factored.items()}
        return self.optimizer_config.build(self.trainable.values(), [self._reference(n) for n in self.trainable],
                                           factored, scales)

    def _reference(self, name: str) -> TensorReference:
        """The base value and gradient statistics of trained tensor `name` (a parameter, or a split weight's columns)."""
        path, _, suffix = name.rpartition(".weight.")
        if suffix == "columns" and path in self.adapters:
            return self.reference.tensor(f"{path}.weight", self.adapters[path].channels)
        return self.reference.tensor(name)  # a LoRA tensor has none: refused there

    # --- steps ------------------------------------------------------------------------------------
    def _forward_backward(self, batch: Batch, sample_ids: list | None, positions: int | None = None,
                          keep: bool = False) -> tuple[float, int, int, int]:
        inputs, targets = self.staged.split_batch(batch)
        loss, hits, saved = self.forward.tracked_loss(inputs, targets, sample_ids, positions, keep)
        loss.backward()
        self._factored_bytes = sum(sink.step_bytes for sink in self.factored.values())
        if not self.optimizer_config.takes_factored:
            for name, sink in self.factored.items():
                self.trainable[name].grad = sink.dense() if sink else None
                sink.clear()
        self._grads_held = tensor_bytes(p.grad for p in self.trainable.values() if p.grad is not None)
        return loss.item(), saved, hits, len(inputs) - hits

    def _clear_gradients(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        for sink in self.factored.values():
            sink.clear()

    def step(self, batch: Batch, sample_ids: list | None = None, measure_peak: bool = False,
             positions: int | None = None) -> StepReport:
        """One training step; its loss is computed before the update. `sample_ids` (one hashable per sample) key the
        prefix cache; by default the samples' contents do. `measure_peak` also measures peak RSS growth (slower: it
        trims the heap first). `positions`: the loss covers this many newest positions (default: the scheme's).
        With a remembered context, consecutive steps on a growing stream extend one memory."""
        peak = PeakRssGrowth() if measure_peak else nullcontext()
        with peak:
            start = time.perf_counter()
            loss, saved, hits, misses = self._forward_backward(batch, sample_ids, positions, keep=True)
            self.optimizer.step()
            factored = self._factored_bytes if self.optimizer_config.takes_factored else 0  # else densified above
            self._held = (self._grads_held + factored, optimizer_state_bytes(self.optimizer))
            self._clear_gradients()
            for adapter in self.adapters.values():
                adapter.write_back()
            self.forward.weights_stepped()
            step_ms = (time.perf_counter() - start) * 1000
        self._last = StepReport(loss, step_ms, saved, hits, misses, peak.bytes if measure_peak else None)
        return self._last

    def gradients(self, batch: Batch, sample_ids: list | None = None, positions: int | None = None
                  ) -> tuple[float, dict[str, torch.Tensor]]:
        """The loss and the gradient of every trained tensor for `batch`, without updating anything."""
        loss, *_ = self._forward_backward(batch, sample_ids, positions)
        grads = {name: self.factored[name].dense() if self.factored.get(name) else p.grad.clone()
                 for name, p in self.trainable.items()}
        self._clear_gradients()
        return loss, grads

    @torch.no_grad()
    def evaluate(self, batch: Batch) -> float:
        """The scheme's loss on `batch` with the current weights (no cache, no update)."""
        inputs, targets = self.staged.split_batch(batch)
        return self.forward.tracked_loss(inputs, targets, None, None, use_cache=False)[0].item()

    @torch.no_grad()
    def evaluate_rows(self, batch: Batch, sample_ids: list | None = None, positions: int | None = None) -> list[float]:
        """Per sample, the scheme's loss (or that on the newest `positions`) with the current weights; the frozen
        prefix (or the remembered context) comes from the cache."""
        inputs, targets = self.staged.split_batch(batch)
        forward = self.forward
        positions = forward.loss_positions(targets, positions)
        if self.scheme.remember_context:
            x, _ = forward.after_memory(inputs, positions, forward.memory_for(inputs, positions, keep=True))
        else:
            x, _ = forward.prefix(inputs, positions, sample_ids, use_cache=True)
            x = forward.run_stages(x, self.cut, len(self.staged.stages), positions)
        targets = forward.newest(targets, positions)
        return [self.staged.loss(x[i:i + 1], targets[i:i + 1]).item() for i in range(len(inputs))]

    # --- reporting and restoring -----------------------------------------------------------------------------
    def memory(self, batch: Batch | None = None) -> MemoryReport:
        """What the plan holds, what its last step measured, and (given a batch) the saved bytes it plans for it.
        Gradients and optimizer state are the bytes of the tensors that existed at the last step (before one, what
        the plan will hold)."""
        trainable = list(self.trainable.values())
        trainable_bytes = tensor_bytes(trainable)
        planned = (self._gradient_bytes(), trainable_bytes * self.optimizer_config.state_per_parameter
                   + getattr(self.optimizer, "state_bytes", lambda: 0)())
        gradient_bytes, optimizer_bytes = self._held or planned
        return MemoryReport(
            parameter_bytes=tensor_bytes(self._persistent),
            trainable_parameters=sum(p.numel() for p in trainable),
            trainable_bytes=trainable_bytes,
            gradient_bytes=gradient_bytes,
            optimizer_bytes=optimizer_bytes,
            cache_bytes=self.forward.cache.bytes + tensor_bytes(self.forward.held_tensors()),
            planned_saved_bytes=None if batch is None else self.forward.planned_saved_bytes(batch),
            measured_saved_bytes=None if self._last is None else self._last.saved_bytes,
            peak_rss_growth=None if self._last is None else self._last.peak_rss_growth,
        )

    def _gradient_bytes(self) -> int:
        """Dense gradients; a factored one counts what its parts held at the last step, with the step's scaled copy."""
        dense = tensor_bytes(p for name, p in self.trainable.items() if name not in self.factored)
        if not self.factored:
            return dense
        if not self.optimizer_config.takes_factored:
            return dense + tensor_bytes(self.trainable[name] for name in self.factored)
        return dense + self._factored_bytes

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The current values of every trained tensor, plus the input channels of split weights (the learner's
        `deltas()` are differences from the base; these are values).

        Names are parameter paths ("blocks.3.norm.bias") or a split Linear's path with "weight.columns" /
        "weight.channels", or "lora_a" / "lora_b".
        """
        tensors = {name: p.detach().clone() for name, p in self.trainable.items()}
        for path, adapter in self.adapters.items():
            tensors.update({f"{path}.{k}": v.clone() for k, v in adapter.layout().items()})
        return tensors

    @torch.no_grad()
    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        """Set the trained tensors to a `snapshot()`, write them into the model, reset the optimizer."""
        expected = self.snapshot()
        if set(snapshot) != set(expected):
            raise ValueError(f"snapshot does not fit this plan: missing {sorted(set(expected) - set(snapshot))}, "
                             f"unexpected {sorted(set(snapshot) - set(expected))}")
        for name, value in snapshot.items():
            if name in self.trainable:
                self.trainable[name].copy_(value)
            elif not torch.equal(value, expected[name]):
                raise ValueError(f"{name} differs: the snapshot was taken on other channels")
        for adapter in self.adapters.values():
            adapter.write_back()
        self.optimizer = self._build_optimizer()
        self.forward.forget_context()

    def close(self) -> None:
        """Give the module back its forward methods and gradient flags; trained weights stay in it."""
        self.selection.release()
        self.forward.cache.clear()
        self.forward.forget_context()

    def __enter__(self) -> "TrainPlan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def compile_plan(staged: StagedModel, scheme: UpdateScheme, optimizer: OptimizerConfig | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, reference: ModelReference | None = None) -> TrainPlan:
    """Compile `scheme` against `staged`: the returned plan holds the module's gradient flags until `close()`.
    A dynamic-evaluation optimizer needs `reference`: the base weights and their gradient statistics."""
    return TrainPlan(staged, scheme, optimizer, cache_bytes, reference)
