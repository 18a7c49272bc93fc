"""Where the learner's time goes, by part: the per-segment cost table (`bench learning`) reads it.

A round's parts: the remembered context (computed or extended before a step), the step itself (forward on the
segment, backward, update), scoring by the base model (the guard's pull-back), the round's checks (finite weights,
garbage, divergence) and its general-text check, the snapshot taken for a roll-back, publishing the kept weights to
the predictor, and the rest (cutting sentences into segments, a roll-back or pull-back).
"""
from __future__ import annotations

import time
from typing import Callable

COST_PARTS = ("context", "step", "base", "checks", "general", "snapshot", "publish", "other")


class PartClock:
    """Adds wall time by part into `parts` (part -> ms, e.g. `LearnerStats.parts_ms`)."""

    def __init__(self, parts: dict[str, float]):
        self.parts = parts
        self._round: tuple[float, float] | None = None  # a round's start, and the parts' total then

    def add(self, part: str, ms: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + ms

    def timed(self, part: str, run: Callable, *args, **kwargs):
        """`run(*args, **kwargs)`, its wall time added to `part`."""
        start = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            self.add(part, (time.perf_counter() - start) * 1000)

    def move(self, part: str, to: str, ms: float) -> None:
        """`ms` counted as `part` was spent on `to`."""
        self.add(part, -ms)
        self.add(to, ms)

    def start_round(self) -> None:
        self._round = (time.perf_counter(), sum(self.parts.values()))

    def round_ms(self) -> float:
        return (time.perf_counter() - self._round[0]) * 1000

    def end_round(self) -> float:
        """The round's wall time (ms); what no part counted goes to "other"."""
        ms, counted = self.round_ms(), self._round[1]
        self.add("other", ms - (sum(self.parts.values()) - counted))
        return ms
