"""A token stream cut for test-then-train steps: near-equal segments of at most N tokens, each after a window of the
tokens before it. The window moves in jumps, so between jumps a remembered context is extended, not rebuilt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Windowing:
    segment: int = 8        # tokens per step at most
    context: int = 120      # tokens of earlier text in front of a segment at most (segment + context <= block size)
    keep: int = 64          # when the next segment would not fit, the window drops all but this many newest tokens

    def __post_init__(self) -> None:
        if not 0 < self.keep <= self.context:
            raise ValueError("the tokens a window keeps must be between 1 and its context")


def segment_bounds(count: int, segment: int) -> list[tuple[int, int]]:
    """`count` tokens cut into the fewest near-equal segments of at most `segment` tokens."""
    parts = max(1, math.ceil(count / segment))
    cuts = [round(i * count / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def rows_after(window: list[int], new: list[int], windowing: Windowing) -> list[tuple[list[int], int]]:
    """Training rows for `new` tokens following `window`: each row ends with one segment after the window as it is
    then, and says how many newest tokens are the segment's; the last row is the window the next tokens follow."""
    rows = []
    for a, b in segment_bounds(len(new), windowing.segment):
        if len(window) + (b - a) > windowing.context + windowing.segment + 1:
            window = window[-windowing.keep:]
        window = window + new[a:b]
        rows.append((window, b - a))
    return rows
