"""Compiling an update scheme against a staged model into a TrainPlan, and running its lean training steps.

Everything is decided once: which tensors train, where backprop stops, split weights, the cached prefix, the optimizer.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from engine.adapters import Lora, LinearAdapter, PartialChannels
from engine.dyneval import ModelReference, TensorReference
from engine.factored import FactoredGradient, factorable, restore_forward, route_gradient
from engine.memory import MemoryReport, PeakRssGrowth, SavedTensorCounter, tensor_bytes
from engine.optimizer import OptimizerConfig
from engine.prefix_cache import PrefixCache, sample_key
from engine.quant import Int8Weight
from engine.resolve import NORMS, ModuleUpdate, resolve, shared_parameters
from engine.scheme import UpdateScheme
from engine.staged import Batch, StagedModel

DEFAULT_CACHE_BYTES = 64 << 20


class _Remembered(NamedTuple):
    """A plan's remembered context: the positions it covers, their memory, the weight versions it is valid for."""

    context: torch.Tensor
    memory: tuple
    versions: tuple[int, ...]


@dataclass(frozen=True)
class StepReport:
    loss: float
    step_ms: float
    saved_bytes: int
    cache_hits: int
    cache_misses: int
    peak_rss_growth: int | None = None


class TrainPlan:
    """A compiled scheme: call `step(batch)` repeatedly; `memory()`, `delta()` and `load_delta()` report and restore.

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
        module = staged.module
        self._requires_grad = {id(p): p.requires_grad for p in module.parameters()}
        module.requires_grad_(False)
        self.trainable: dict[str, nn.Parameter] = {}
        self.adapters: dict[str, LinearAdapter] = {}
        self.int8: dict[str, Int8Weight] = {}
        self._selected: set[int] = set()  # the modules the scheme selects (a tied weight trains through these only)
        self.factored: dict[str, FactoredGradient] = {}
        self.lr_scales: dict[str, float] = {}  # trained tensor -> its rule's learning-rate scale
        self._routed: list[nn.Module] = []
        try:
            self._attach(resolve(scheme, staged))
            if not self.trainable:
                raise ValueError(f"scheme {scheme.name!r} selects no tensor of this model")
            if scheme.frozen_int8:
                self._hold_frozen_as_int8()
            self._route_embedding_gradients()
            self.cut = self._find_cut()
            self._slice_at = self._find_slice()
            self._check_memory()
        except Exception:
            self._release()
            raise
        prefix_modules = [m for stage in staged.stages[:self.cut] for m in stage.modules]
        watched = [t for m in prefix_modules for t in (*m.parameters(), *m.buffers())]
        self.cache = PrefixCache(watched, cache_bytes)
        self.optimizer = self._build_optimizer()
        self._persistent = [*module.parameters(), *module.buffers(), *self.trainable.values(),
                            *(t for a in self.adapters.values() for t in a.extra_tensors().values()),
                            *(t for q in self.int8.values() for t in q.tensors())]
        self._planned_saved: dict[tuple, int] = {}
        self._last: StepReport | None = None
        self._weights = [*module.parameters(), *module.buffers()]
        self._factored_bytes = 0  # what the factored gradients held at the last step
        self._memory: _Remembered | None = None

    # --- compiling -------------------------------------------------------------------------------------------
    def _attach(self, updates: dict[str, ModuleUpdate]) -> None:
        modules = dict(self.staged.module.named_modules())
        shared = shared_parameters(self.staged.module)
        for path, update in updates.items():
            m = modules[path]
            self._selected.add(id(m))
            names = []
            if update.bias:
                names += ["bias"] + (["weight"] if isinstance(m, NORMS) else [])
            if update.weight == 1.0:
                names.append("weight")
            for name in dict.fromkeys(names):
                p = getattr(m, name, None)
                if isinstance(p, nn.Parameter):
                    p.requires_grad_(True)
                    name = self._parameter_name(p)
                    self.trainable.setdefault(name, p)
                    self.lr_scales[name] = max(self.lr_scales.get(name, 0.0), update.lr_scale)
            if 0.0 < update.weight < 1.0 or update.lora_rank:
                if id(m.weight) in shared:
                    raise ValueError(f"{path}.weight is shared with another module; it can only train whole")
                adapter = PartialChannels(m, update.weight) if update.weight else Lora(m, update.lora_rank)
                self.adapters[path] = adapter
                for k, v in adapter.trainable().items():
                    self.trainable[f"{path}.{k}"] = v
                    self.lr_scales[f"{path}.{k}"] = update.lr_scale

    def _hold_frozen_as_int8(self) -> None:
        shared = shared_parameters(self.staged.module)
        for path, m in self.staged.module.named_modules():
            if (isinstance(m, nn.Linear) and path not in self.adapters and not m.weight.requires_grad
                    and id(m.weight) not in shared):
                self.int8[path] = Int8Weight(m, self._requires_grad[id(m.weight)])

    def _route_embedding_gradients(self) -> None:
        """A trained weight that an embedding looks up keeps its gradient factored (engine/factored.py) when every
        module using it can: the lookup's rows and a tied projection's two thin matrices, never the dense matrix."""
        modules = list(self.staged.module.modules())
        for name, p in self.trainable.items():
            users = [m for m in modules if getattr(m, "weight", None) is p]
            if any(isinstance(m, nn.Embedding) for m in users) and all(factorable(m, p) for m in users):
                self.factored[name] = FactoredGradient(p.shape)
                for m in users:
                    route_gradient(m, self.factored[name])
                self._routed += users

    def _parameter_name(self, p: nn.Parameter) -> str:
        return next(name for name, q in self.staged.module.named_parameters() if q is p)

    def _find_cut(self) -> int:
        """The first stage holding a selected module: backprop stops there. A weight tied to a module of an earlier
        stage (an embedding shared with the output projection) trains from the selected module's use of it alone."""
        return next(i for i, stage in enumerate(self.staged.stages)
                    if any(id(sub) in self._selected for m in stage.modules for sub in m.modules()))

    def _find_slice(self) -> int:
        """The stage boundary after which every stage is position-wise: the loss's positions can be cut there."""
        if self.staged.positions_dim is None:
            if self.scheme.loss_last_fraction < 1.0:
                raise ValueError("loss_last_fraction < 1 needs a model with positions (positions_dim)")
            return len(self.staged.stages)
        at = len(self.staged.stages)
        while at > self.cut and not self.staged.stages[at - 1].mixes_positions:
            at -= 1
        return at

    def _check_memory(self) -> None:
        if not self.scheme.remember_context:
            return
        if self.staged.remember is None or self.staged.positions_dim is None:
            raise ValueError(f"scheme {self.scheme.name!r} remembers context: the staged model needs `remember`")
        if any(stage.mixes_positions and stage.run_after is None for stage in self.staged.stages):
            raise ValueError("every stage that mixes positions needs `run_after` to run after a memory")

    def _build_optimizer(self) -> torch.optim.Optimizer:
        scales = [self.lr_scales[name] for name in self.trainable]
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

    # --- running ---------------------------------------------------------------------------------------------
    def _loss_positions(self, targets: torch.Tensor, positions: int | None = None) -> int | None:
        """How many newest positions the loss covers: `positions` if given, else the scheme's share (None: all)."""
        if positions is not None:
            return min(positions, targets.shape[self.staged.positions_dim])
        if self.scheme.loss_last_fraction == 1.0:
            return None
        return self.scheme.loss_positions(targets.shape[self.staged.positions_dim])

    def _newest(self, x: torch.Tensor, positions: int | None) -> torch.Tensor:
        if positions is None:
            return x
        dim = self.staged.positions_dim
        return x.narrow(dim, x.shape[dim] - positions, positions).clone()

    def _run_stages(self, x: torch.Tensor, start: int, stop: int, positions: int | None) -> torch.Tensor:
        for i in range(start, stop):
            x = self.staged.stages[i].run(x)
            if i + 1 == self._slice_at:
                x = self._newest(x, positions)
        return x

    def _prefix(self, inputs: torch.Tensor, positions: int | None, sample_ids: list | None,
                use_cache: bool) -> tuple[torch.Tensor, int]:
        """The cut's input for every sample (from the cache where possible) and how many samples were cached."""
        if self.cut == 0:
            return (self._newest(inputs, positions) if self._slice_at == 0 else inputs), 0
        if not use_cache:
            with torch.no_grad():
                return self._run_stages(inputs, 0, self.cut, positions), 0
        self.cache.check()
        keys = sample_ids if sample_ids is not None else [sample_key(row) for row in inputs]
        rows = [self.cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            with torch.no_grad():
                computed = self._run_stages(inputs[missing], 0, self.cut, positions)
            for i, row in zip(missing, computed):
                rows[i] = row.clone()
                self.cache.put(keys[i], rows[i])
        return torch.stack(rows), len(rows) - len(missing)

    # --- a remembered context (scheme.remember_context) ------------------------------------------------------
    def _versions(self) -> tuple[int, ...]:
        return tuple(t._version for t in self._weights)

    def _memory_for(self, inputs: torch.Tensor, positions: int | None, keep: bool) -> tuple | None:
        """The memory of the positions before the loss's. With `keep` (a stream of steps), the last step's memory
        is extended when its context begins this one (batch of one) and no weight changed but by this plan's own
        steps; it keeps the values of the weights it was computed with, as Transformer-XL's memory does."""
        dim = self.staged.positions_dim
        known = inputs.shape[dim] - (inputs.shape[dim] if positions is None else positions)
        if known == 0:
            return None
        context = inputs.narrow(dim, 0, known)
        held = self._memory if keep else None
        length = None if held is None else held.context.shape[dim]
        if (held is not None and held.versions == self._versions() and len(context) == 1 and length <= known
                and torch.equal(context.narrow(dim, 0, length), held.context)):
            grown = known - length
            memory = held.memory if grown == 0 else self.staged.remember(context.narrow(dim, length, grown), held.memory)
        else:
            memory = self.staged.remember(context, None)
        if keep:
            self._memory = _Remembered(context.clone(), memory, self._versions())
        return memory

    def forget_context(self) -> None:
        """Drop the remembered context: the next step computes it again with the weights of that moment."""
        self._memory = None

    def _after_memory(self, inputs: torch.Tensor, positions: int | None, memory: tuple | None) -> torch.Tensor:
        """The stages on the loss's positions alone, each mixing stage after its entry of the memory."""
        x = self._newest(inputs, positions)
        for i, stage in enumerate(self.staged.stages):
            with torch.no_grad() if i < self.cut else nullcontext():
                x = stage.run(x) if memory is None or not stage.mixes_positions else stage.run_after(x, memory[i])
        return x

    # --- losses and steps ------------------------------------------------------------------------------------
    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor, sample_ids: list | None,
              use_cache: bool = True, positions: int | None = None, memory: tuple | None = None
              ) -> tuple[torch.Tensor, int]:
        positions = self._loss_positions(targets, positions)
        if self.scheme.remember_context:
            x, hits = self._after_memory(inputs, positions, memory), 0
        else:
            x, hits = self._prefix(inputs, positions, sample_ids, use_cache)
            x = self._run_stages(x, self.cut, len(self.staged.stages), positions)
        return self.staged.loss(x, self._newest(targets, positions)), hits

    def _tracked_loss(self, inputs: torch.Tensor, targets: torch.Tensor, sample_ids: list | None,
                      positions: int | None, keep: bool = False, use_cache: bool = True
                      ) -> tuple[torch.Tensor, int, int]:
        """The loss, its cache hits, and the bytes autograd saved for it (a remembered context is not counted:
        like the prefix cache, it is held between steps and reported with the caches)."""
        memory = None
        if self.scheme.remember_context:
            memory = self._memory_for(inputs, self._loss_positions(targets, positions), keep)
        with SavedTensorCounter([*self._persistent, *_memory_tensors(memory)]) as saved:
            loss, hits = self._loss(inputs, targets, sample_ids, use_cache, positions, memory)
        return loss, hits, saved.bytes

    def _forward_backward(self, batch: Batch, sample_ids: list | None, positions: int | None = None,
                          keep: bool = False) -> tuple[float, int, int, int]:
        inputs, targets = self.staged.split_batch(batch)
        loss, hits, saved = self._tracked_loss(inputs, targets, sample_ids, positions, keep)
        loss.backward()
        self._factored_bytes = sum(sink.step_bytes for sink in self.factored.values())
        if not self.optimizer_config.takes_factored:
            for name, sink in self.factored.items():
                self.trainable[name].grad = sink.dense() if sink else None
                sink.clear()
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
            self._clear_gradients()
            for adapter in self.adapters.values():
                adapter.write_back()
            if self._memory is not None:  # this plan's own update leaves the memory usable
                self._memory = self._memory._replace(versions=self._versions())
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
        return self._tracked_loss(inputs, targets, None, None, use_cache=False)[0].item()

    @torch.no_grad()
    def evaluate_rows(self, batch: Batch, sample_ids: list | None = None, positions: int | None = None) -> list[float]:
        """Per sample, the scheme's loss (or that on the newest `positions`) with the current weights; the frozen
        prefix (or the remembered context) comes from the cache."""
        inputs, targets = self.staged.split_batch(batch)
        positions = self._loss_positions(targets, positions)
        if self.scheme.remember_context:
            x = self._after_memory(inputs, positions, self._memory_for(inputs, positions, keep=True))
        else:
            x, _ = self._prefix(inputs, positions, sample_ids, use_cache=True)
            x = self._run_stages(x, self.cut, len(self.staged.stages), positions)
        targets = self._newest(targets, positions)
        return [self.staged.loss(x[i:i + 1], targets[i:i + 1]).item() for i in range(len(inputs))]

    # --- reporting and restoring -----------------------------------------------------------------------------
    def planned_saved_bytes(self, batch: Batch) -> int:
        """Bytes saved for backward, planned per batch shape: forwards of one and of two samples are traced,
        and the per-sample and fixed parts they show are scaled to the batch size."""
        inputs, targets = self.staged.split_batch(batch)
        shape = (tuple(inputs.shape), tuple(targets.shape))
        if shape not in self._planned_saved:
            one, two = (self._traced_saved_bytes(inputs[:n], targets[:n]) for n in (1, 2))
            self._planned_saved[shape] = one + (two - one) * (len(inputs) - 1)
        return self._planned_saved[shape]

    def _traced_saved_bytes(self, inputs: torch.Tensor, targets: torch.Tensor) -> int:
        return self._tracked_loss(inputs, targets, None, None, use_cache=False)[2]

    def memory(self, batch: Batch | None = None) -> MemoryReport:
        """What the plan holds, what its last step measured, and (given a batch) the saved bytes it plans for it."""
        trainable = list(self.trainable.values())
        trainable_bytes = tensor_bytes(trainable)
        return MemoryReport(
            parameter_bytes=tensor_bytes(self._persistent),
            trainable_parameters=sum(p.numel() for p in trainable),
            trainable_bytes=trainable_bytes,
            gradient_bytes=self._gradient_bytes(),
            optimizer_bytes=(trainable_bytes * self.optimizer_config.state_per_parameter
                             + getattr(self.optimizer, "state_bytes", lambda: 0)()),
            cache_bytes=self.cache.bytes + tensor_bytes(_memory_tensors(self._memory and self._memory.memory)),
            planned_saved_bytes=None if batch is None else self.planned_saved_bytes(batch),
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

    def delta(self) -> dict[str, torch.Tensor]:
        """Current values (not differences) of every trained tensor, plus the input channels of split weights.

        Names are parameter paths ("blocks.3.norm.bias") or a split Linear's path with "weight.columns" /
        "weight.channels", or "lora_a" / "lora_b".
        """
        tensors = {name: p.detach().clone() for name, p in self.trainable.items()}
        for path, adapter in self.adapters.items():
            tensors.update({f"{path}.{k}": v.clone() for k, v in adapter.layout().items()})
        return tensors

    @torch.no_grad()
    def load_delta(self, delta: dict[str, torch.Tensor]) -> None:
        """Set the trained tensors to `delta` (as given by `delta()`), write them into the model, reset the optimizer."""
        expected = self.delta()
        if set(delta) != set(expected):
            raise ValueError(f"delta does not fit this plan: missing {sorted(set(expected) - set(delta))}, "
                             f"unexpected {sorted(set(delta) - set(expected))}")
        for name, value in delta.items():
            if name in self.trainable:
                self.trainable[name].copy_(value)
            elif not torch.equal(value, expected[name]):
                raise ValueError(f"{name} differs: the delta was trained on other channels")
        for adapter in self.adapters.values():
            adapter.write_back()
        self.optimizer = self._build_optimizer()
        self._memory = None

    def _release(self) -> None:
        for module in self._routed:
            restore_forward(module)
        self._routed = []
        for adapter in self.adapters.values():
            adapter.detach()
        for weight in self.int8.values():
            weight.release()
        self.adapters, self.int8 = {}, {}
        for p in self.staged.module.parameters():
            p.requires_grad_(self._requires_grad.get(id(p), p.requires_grad))

    def close(self) -> None:
        """Give the module back its forward methods and gradient flags; trained weights stay in it."""
        self._release()
        self.cache.clear()
        self._memory = None

    def __enter__(self) -> "TrainPlan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _memory_tensors(memory: tuple | None) -> list[torch.Tensor]:
    return [t for entry in memory or () if isinstance(entry, tuple) for t in entry]


def compile_plan(staged: StagedModel, scheme: UpdateScheme, optimizer: OptimizerConfig | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, reference: ModelReference | None = None) -> TrainPlan:
    """Compile `scheme` against `staged`: the returned plan holds the module's gradient flags until `close()`.
    A dynamic-evaluation optimizer needs `reference`: the base weights and their gradient statistics."""
    return TrainPlan(staged, scheme, optimizer, cache_bytes, reference)
