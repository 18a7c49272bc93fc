"""A minimal terminal progress bar for long work (pretraining, evaluation, benchmarks).

Redraws one line on stderr a few times a second; when stderr is not a terminal, writes a line a minute.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: float, label: str = "", unit: str = "", stream=None, force: bool = False):
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr
        self.live = force or self.stream.isatty()
        self.done = 0.0
        self.first: float | None = None  # where this run began (a resumed job starts part-way)
        self.start = time.monotonic()
        self._last_draw = 0.0

    def update(self, done: float, info: str = "") -> None:
        self.done = done
        if self.first is None:
            self.first = done
        now = time.monotonic()
        interval = 0.25 if self.live else 60.0
        if now - self._last_draw > interval or (self.live and done >= self.total):
            self._last_draw = now
            self._draw(info)

    def _draw(self, info: str) -> None:
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        width = 28
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        elapsed = time.monotonic() - self.start
        rate = (self.done - (self.first or 0.0)) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        line = (f"{self.label} [{bar}] {frac:6.1%} {self.done:,.0f}/{self.total:,.0f}{self.unit} "
                f"{elapsed / 60:5.1f}m<{eta / 60:.1f}m {info}")
        self.stream.write("\r" + line[:160].ljust(100) if self.live else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
