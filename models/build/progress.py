"""Progress bars for long work (pretraining, counting, evaluation, the scheme search), on tqdm.

On a terminal the bar redraws a few times a second; elsewhere (a log file, a pipe) it writes a whole line about
once a minute.
"""
from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

LINE_SECONDS = 60.0  # how often a bar writes a line when not on a terminal


class _Lines:
    """tqdm's redraws as whole lines, for a stream that is no terminal."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(total: float, desc: str, unit: str = "it", initial: float = 0, stream: TextIO | None = None) -> tqdm:
    """A bar to `update(n)` by increments (`advance_to` sets it to a count) and `close()`."""
    stream = stream or sys.stderr
    live = stream.isatty()
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, unit_scale=True, file=stream if live else _Lines(stream),
                mininterval=0.25 if live else LINE_SECONDS, maxinterval=LINE_SECONDS, dynamic_ncols=live, ascii=not live,
                smoothing=0.1)


def advance_to(bar: tqdm, done: float, info: str = "") -> None:
    """Move the bar to `done` (a count from the start), with `info` after it."""
    if info:
        bar.set_postfix_str(info, refresh=False)
    bar.update(done - bar.n)
