"""Paired comparisons over users: the mean of per-user differences, its 95% bootstrap interval, and how many gained.

Twelve users cannot tell +0.1 from zero without the interval; every benchmark that compares systems reports it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedGain:
    mean: float
    low: float     # 95% bootstrap interval of the mean
    high: float
    better: int    # users whose difference is above zero
    users: int

    def line(self, unit: str, digits: int = 4) -> str:
        f = f"{{:+.{digits}f}}"
        return (f"{f.format(self.mean)} {unit} (95% CI {f.format(self.low)} to {f.format(self.high)}), "
                f"better for {self.better} of {self.users} users")


def paired_gain(differences: list[float], resamples: int = 10_000, seed: int = 0) -> PairedGain:
    """Mean of `differences` (one per user, system minus reference) with a percentile bootstrap over users."""
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return PairedGain(float(values.mean()), float(low), float(high), int((values > 0).sum()), len(values))
