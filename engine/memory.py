"""Measuring what a training step costs in memory: bytes autograd saves for backward, and peak RSS growth.

Saved tensors are counted by storage (views of one buffer count once); persistent tensors such as weights are left out.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class SavedTensorCounter:
    """Context manager counting the distinct storages autograd saves for backward, except `persistent` ones."""

    def __init__(self, persistent: Iterable[torch.Tensor] = ()):
        self._persistent = {storage_key(t) for t in persistent}
        self._seen: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in self._persistent:
            self._seen[key] = t.untyped_storage().nbytes()
        return t

    @property
    def bytes(self) -> int:
        return sum(self._seen.values())

    def __enter__(self) -> "SavedTensorCounter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BLOCK_BYTES = 256 * 1024


@functools.cache
def _libc_function(function: str):
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), function, None) if name else None


def release_free_heap() -> None:
    """Give freed heap pages back to the system (glibc only): a long-running process stays at its real size,
    and the next allocations show up as RSS growth."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def map_large_blocks() -> None:
    """Allocations of 256 KiB and more (activations, weight copies) get pages of their own that go back to the system
    when freed (glibc only). By default glibc raises that bound to the largest block freed so far, after which such
    blocks come from the heap and leave it fragmented: the soak's RSS growth varied from +30 to +54 MiB with it, and
    was +19 MiB without."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)


def process_rss_bytes() -> int | None:
    """This process's resident set size now (Linux; None elsewhere)."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


class PeakRssGrowth:
    """Context manager: how far the resident set size peaks above its level at entry (Linux; None elsewhere)."""

    def __init__(self) -> None:
        self.bytes: int | None = None
        self._start: int | None = None

    def __enter__(self) -> "PeakRssGrowth":
        release_free_heap()
        try:
            _CLEAR_REFS.write_text("5")  # resets the peak (VmHWM) to the current RSS
        except OSError:
            return self
        self._start = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_kb("VmHWM")
        if self._start is not None and peak is not None:
            self.bytes = max(0, peak - self._start) * 1024


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of distinct storages among `tensors`."""
    sizes = {storage_key(t): t.untyped_storage().nbytes() for t in tensors}
    return sum(sizes.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the state tensors an optimizer holds now (AdamW's moments and step counts, say), plus what it keeps
    besides (`state_bytes()`: dynamic evaluation's base weights and gradient statistics)."""
    state = [t for entry in optimizer.state.values() for t in entry.values() if torch.is_tensor(t)]
    return tensor_bytes(state) + getattr(optimizer, "state_bytes", lambda: 0)()


@dataclass(frozen=True)
class MemoryReport:
    """A plan's memory: what it holds by construction, and what its steps were measured to use.

    `planned_saved_bytes` comes from forwards of one and two samples traced by the plan, scaled to the batch;
    `measured_saved_bytes` is the last step's. Training memory = saved activations + gradients + optimizer state.
    """

    parameter_bytes: int
    trainable_parameters: int
    trainable_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    cache_bytes: int
    planned_saved_bytes: int | None
    measured_saved_bytes: int | None
    peak_rss_growth: int | None

    @property
    def training_bytes(self) -> int | None:
        saved = self.measured_saved_bytes
        return None if saved is None else saved + self.gradient_bytes + self.optimizer_bytes
