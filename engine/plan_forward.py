"""A plan's forward pass to its loss: the frozen prefix from the cache (or, for a scheme that remembers its context,
the memory of the positions before the loss's), the trained stages on the newest positions, and the bytes autograd
saves for backward.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from typing import NamedTuple

import torch

from engine.memory import SavedTensorCounter
from engine.prefix_cache import PrefixCache, sample_key
from engine.scheme import UpdateScheme
from engine.staged import Batch, StagedModel


class _Remembered(NamedTuple):
    """A plan's remembered context: the positions it covers, their memory, the weight versions it is valid for."""

    context: torch.Tensor
    memory: tuple
    versions: tuple[int, ...]


def memory_tensors(memory: tuple | None) -> list[torch.Tensor]:
    return [t for entry in memory or () if isinstance(entry, tuple) for t in entry]


class PlanForward:
    """Runs `staged` with backprop from stage `cut` on, the loss's positions cut after stage `slice_at`."""

    def __init__(self, staged: StagedModel, scheme: UpdateScheme, cut: int, slice_at: int, cache_bytes: int,
                 persistent: list[torch.Tensor]):
        self.staged, self.scheme, self.cut, self._slice_at = staged, scheme, cut, slice_at
        prefix_modules = [m for stage in staged.stages[:cut] for m in stage.modules]
        watched = [t for m in prefix_modules for t in (*m.parameters(), *m.buffers())]
        self.cache = PrefixCache(watched, cache_bytes)
        self._persistent = persistent
        self._weights = [*staged.module.parameters(), *staged.module.buffers()]
        self._memory: _Remembered | None = None
        self._planned_saved: dict[tuple, int] = {}
        self.memory_ms = 0.0  # time spent computing the remembered context, ever (the learner's cost table reads it)

    def loss_positions(self, targets: torch.Tensor, positions: int | None = None) -> int | None:
        """How many newest positions the loss covers: `positions` if given, else the scheme's share (None: all)."""
        if positions is not None:
            return min(positions, targets.shape[self.staged.positions_dim])
        if self.scheme.loss_last_fraction == 1.0:
            return None
        return self.scheme.loss_positions(targets.shape[self.staged.positions_dim])

    def newest(self, x: torch.Tensor, positions: int | None) -> torch.Tensor:
        if positions is None:
            return x
        dim = self.staged.positions_dim
        return x.narrow(dim, x.shape[dim] - positions, positions).clone()

    def run_stages(self, x: torch.Tensor, start: int, stop: int, positions: int | None) -> torch.Tensor:
        for i in range(start, stop):
            x = self.staged.stages[i].run(x)
            if i + 1 == self._slice_at:
                x = self.newest(x, positions)
        return x

    def prefix(self, inputs: torch.Tensor, positions: int | None, sample_ids: list | None,
                use_cache: bool) -> tuple[torch.Tensor, int]:
        """The cut's input for every sample (from the cache where possible) and how many samples were cached."""
        if self.cut == 0:
            return (self.newest(inputs, positions) if self._slice_at == 0 else inputs), 0
        if not use_cache:
            with torch.no_grad():
                return self.run_stages(inputs, 0, self.cut, positions), 0
        self.cache.check()
        keys = sample_ids if sample_ids is not None else [sample_key(row) for row in inputs]
        rows = [self.cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            with torch.no_grad():
                computed = self.run_stages(inputs[missing], 0, self.cut, positions)
            for i, row in zip(missing, computed):
                rows[i] = row.clone()
                self.cache.put(keys[i], rows[i])
        return torch.stack(rows), len(rows) - len(missing)

    def versions(self) -> tuple[int, ...]:
        return tuple(t._version for t in self._weights)

    def memory_for(self, inputs: torch.Tensor, positions: int | None, keep: bool) -> tuple | None:
        """The memory of the positions before the loss's. With `keep` (a stream of steps, or a check along it), the
        memory held from the last step is used when it covers this context, or begins it (batch of one), and no
        weight changed but by this plan's own steps: cut to the context, or extended by what it lacks. It keeps the
        values of the weights it was computed with, as Transformer-XL's memory does."""
        dim = self.staged.positions_dim
        known = inputs.shape[dim] - (inputs.shape[dim] if positions is None else positions)
        if known == 0:
            return None
        start = time.perf_counter()
        context = inputs.narrow(dim, 0, known)
        held = self._memory if keep and len(context) == 1 else None
        if held is not None and held.versions == self.versions():
            length = held.context.shape[dim]
            if length >= known and self.staged.trim is not None \
                    and torch.equal(held.context.narrow(dim, 0, known), context):
                self.memory_ms += (time.perf_counter() - start) * 1000
                return held.memory if length == known else self.staged.trim(held.memory, known)  # held stays
            if length < known and torch.equal(context.narrow(dim, 0, length), held.context):
                memory = self.staged.remember(context.narrow(dim, length, known - length), held.memory)
            else:
                memory = self.staged.remember(context, None)
        else:
            memory = self.staged.remember(context, None)
        if keep:
            self._memory = _Remembered(context.clone(), memory, self.versions())
        self.memory_ms += (time.perf_counter() - start) * 1000
        return memory

    def remember_step(self, inputs: torch.Tensor, memory: tuple | None, added: list) -> None:
        """After a kept step ran its positions after `memory`: hold the memory of all its inputs, so the next step
        (whose context they are) runs no forward pass for it."""
        if memory is not None and self.staged.grow is not None and len(inputs) == 1:
            self._memory = _Remembered(inputs.clone(), self.staged.grow(memory, added), self.versions())

    def forget_context(self) -> None:
        """Drop the remembered context: the next step computes it again with the weights of that moment."""
        self._memory = None

    def weights_stepped(self) -> None:
        """This plan's own update leaves the remembered context usable."""
        if self._memory is not None:
            self._memory = self._memory._replace(versions=self.versions())

    def held_tensors(self) -> list[torch.Tensor]:
        """The tensors held between steps: the remembered context's memory."""
        return memory_tensors(self._memory and self._memory.memory)

    def after_memory(self, inputs: torch.Tensor, positions: int | None, memory: tuple | None
                     ) -> tuple[torch.Tensor, list]:
        """The stages on the loss's positions alone, each mixing stage after its entry of the memory; also what each
        stage's run after the memory adds to it (None for stages run plainly)."""
        x, added = self.newest(inputs, positions), []
        for i, stage in enumerate(self.staged.stages):
            with torch.no_grad() if i < self.cut else nullcontext():
                if memory is None or not stage.mixes_positions:
                    x, own = stage.run(x), None
                else:
                    x, own = stage.run_after(x, memory[i])
            added.append(own)
        return x, added

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, sample_ids: list | None,
              use_cache: bool = True, positions: int | None = None, memory: tuple | None = None, keep: bool = False
              ) -> tuple[torch.Tensor, int]:
        positions = self.loss_positions(targets, positions)
        if self.scheme.remember_context:
            (x, added), hits = self.after_memory(inputs, positions, memory), 0
            if keep:
                self.remember_step(inputs, memory, added)
        else:
            x, hits = self.prefix(inputs, positions, sample_ids, use_cache)
            x = self.run_stages(x, self.cut, len(self.staged.stages), positions)
        return self.staged.loss(x, self.newest(targets, positions)), hits

    def tracked_loss(self, inputs: torch.Tensor, targets: torch.Tensor, sample_ids: list | None,
                      positions: int | None, keep: bool = False, use_cache: bool = True
                      ) -> tuple[torch.Tensor, int, int]:
        """The loss, its cache hits, and the bytes autograd saved for it (a remembered context is not counted:
        like the prefix cache, it is held between steps and reported with the caches)."""
        memory = None
        if self.scheme.remember_context:
            memory = self.memory_for(inputs, self.loss_positions(targets, positions), keep)
        with SavedTensorCounter([*self._persistent, *memory_tensors(memory)]) as saved:
            loss, hits = self.loss(inputs, targets, sample_ids, use_cache, positions, memory, keep)
        return loss, hits, saved.bytes

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
        return self.tracked_loss(inputs, targets, None, None, use_cache=False)[2]
