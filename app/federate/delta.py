"""Model deltas as they travel: the slices (embedding rows, input channels, whole vectors) a device changed, chosen
under an upload budget with the rest kept back for its next round (error feedback); checked, clipped and averaged.

On the wire a tensor `name` is `name` (its values) plus `name|rows` or `name|cols` (the slice indices), or `name`
alone for a whole tensor; nothing but model parameter names and indices travels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ROWS, COLS = "|rows", "|cols"
Tensors = dict[str, np.ndarray]


class DeltaError(ValueError):
    """A delta the server turns down: unknown tensors, bad indices or shapes, not finite."""


def index_key(name: str, axis: int) -> str:
    """The key of a sliced tensor's indices."""
    return name + (ROWS if axis == 0 else COLS)


def slice_axis(name: str, shape: tuple[int, ...]) -> int | None:
    """The axis a tensor is cut along: an embedding's rows (tokens, positions), a linear weight's input channels
    (the channels the sparse engine trains); a vector travels whole (None)."""
    if len(shape) != 2:
        return None
    return 0 if name.split(".")[0] in ("wte", "wpe") else 1


@dataclass(frozen=True)
class Unit:
    name: str
    index: int | None  # the slice along the tensor's axis; None: the whole tensor
    energy: float      # squared L2 norm of the slice
    size: int          # values it holds


def _units(delta: Tensors) -> list[Unit]:
    units = []
    for name, value in delta.items():
        axis = slice_axis(name, value.shape)
        if axis is None:
            units.append(Unit(name, None, float(np.square(value).sum()), value.size))
            continue
        energy = np.square(value).sum(axis=1 - axis)
        size = value.size // value.shape[axis]
        units += [Unit(name, int(i), float(energy[i]), size) for i in np.flatnonzero(energy)]
    return [u for u in units if u.energy > 0]


def select(delta: Tensors, budget: int | None) -> tuple[Tensors, Tensors]:
    """(sent, kept): the slices holding the most squared norm per value that fit in `budget` values (None: every
    changed slice), and the rest of `delta`, which the device adds to its next round's delta."""
    units = sorted(_units(delta), key=lambda u: u.energy / u.size, reverse=True)
    chosen: dict[str, list[int | None]] = {}
    used = 0
    for unit in units:
        if budget is not None and used + unit.size > budget:
            continue
        chosen.setdefault(unit.name, []).append(unit.index)
        used += unit.size
    sent, kept = {}, {name: value.copy() for name, value in delta.items()}
    for name, indices in chosen.items():
        axis = slice_axis(name, delta[name].shape)
        if axis is None:
            sent[name] = delta[name].astype(np.float32)
            kept[name][...] = 0
            continue
        idx = np.sort(np.asarray(indices, dtype=np.int32))
        sent[name] = np.take(delta[name], idx, axis=axis).astype(np.float32)
        sent[index_key(name, axis)] = idx
        if axis == 0:
            kept[name][idx] = 0
        else:
            kept[name][:, idx] = 0
    return sent, {name: value for name, value in kept.items() if value.any()}


def _split_key(key: str) -> tuple[str, str]:
    for suffix in (ROWS, COLS):
        if key.endswith(suffix):
            return key[:-len(suffix)], suffix
    return key, ""


def densify(sent: Tensors, shapes: dict[str, tuple[int, ...]]) -> Tensors:
    """The full-shape delta of what a device sent, checked against the model's tensor `shapes`: float32 values
    (finite), int32 indices (distinct, in range, along the tensor's own axis), nothing else."""
    dense: Tensors = {}
    keys: dict[str, set[str]] = {}
    for key in sent:
        name, suffix = _split_key(key)
        keys.setdefault(name, set()).add(suffix)
    for name, suffixes in sorted(keys.items()):
        if name not in shapes or "" not in suffixes:
            raise DeltaError(f"unknown or incomplete tensor {name!r}")
        shape, values = shapes[name], sent[name]
        if values.dtype != np.float32 or not np.isfinite(values).all():
            raise DeltaError(f"{name}: values must be finite float32")
        axis = slice_axis(name, shape)
        allowed = {""} if axis is None else {"", index_key(name, axis)[len(name):]}
        if not suffixes <= allowed:
            raise DeltaError(f"{name}: sliced along the wrong axis")
        full = np.zeros(shape, dtype=np.float32)
        if len(suffixes) == 1:
            if values.shape != shape:
                raise DeltaError(f"{name}: shape {values.shape}, expected {shape}")
            full[...] = values
        else:
            idx = sent[index_key(name, axis)]
            if idx.dtype != np.int32 or idx.ndim != 1 or len(np.unique(idx)) != len(idx) \
                    or (len(idx) and (idx.min() < 0 or idx.max() >= shape[axis])):
                raise DeltaError(f"{name}: slice indices must be distinct int32 within 0..{shape[axis] - 1}")
            want = list(shape)
            want[axis] = len(idx)
            if values.shape != tuple(want):
                raise DeltaError(f"{name}: shape {values.shape}, expected {tuple(want)}")
            if axis == 0:
                full[idx] = values
            else:
                full[:, idx] = values
        dense[name] = full
    return dense


def norm(delta: Tensors) -> float:
    return math.sqrt(sum(float(np.square(v, dtype=np.float64).sum()) for v in delta.values()))


def clip(delta: Tensors, max_norm: float) -> tuple[Tensors, bool]:
    """`delta` scaled down to L2 norm `max_norm` if above it; and whether it was."""
    size = norm(delta)
    if size <= max_norm:
        return delta, False
    scale = max_norm / size
    return {name: (value * scale).astype(np.float32) for name, value in delta.items()}, True


def weighted_mean(deltas: list[Tensors], weights: list[float]) -> Tensors:
    """FedAvg: Σ wᵢ Δᵢ / Σ wᵢ, a tensor missing from a delta counting as zero."""
    total = float(sum(weights))
    mean: Tensors = {}
    for delta, weight in zip(deltas, weights):
        for name, value in delta.items():
            mean[name] = mean.get(name, 0) + value.astype(np.float64) * (weight / total)
    return {name: value.astype(np.float32) for name, value in mean.items()}
