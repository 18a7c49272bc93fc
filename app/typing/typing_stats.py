"""What a user's own typing says of the suggestions: how often the next word was among them, keystrokes saved.

The window reports suggestion lists, keystrokes and text; this keeps rolling figures and the points of the chart.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from app.typing.words import split_typing


@dataclass
class ChartPoint:
    word: int            # words finished so far
    hit_rate: float      # % of the last `window` words that were suggested before their first letter
    saved: float         # % of characters the user did not have to type, over the session so far


@dataclass
class TypingStats:
    """Counters since the window opened; `points` has one entry per finished word."""

    window: int = 50                # words the rolling hit rate covers
    keystrokes: int = 0             # keys, clicks and accepted suggestions that added text
    characters: int = 0             # characters they added
    words: int = 0
    points: list[ChartPoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._hits: deque[int] = deque(maxlen=self.window)
        self._first: list[str] = []
        self._previous = ""

    def shown(self, text: str, suggestions: list[str]) -> None:
        """Suggestions shown for `text`; those shown before a word's first letter decide its hit."""
        if not split_typing(text).prefix:
            self._first = [w.lower() for w in suggestions]

    def typed(self, text: str, keystrokes: int = 1) -> None:
        """The text after the user spent `keystrokes` keys (a key, a click, or accepting a suggestion)."""
        if text.startswith(self._previous) and len(text) > len(self._previous):
            self.characters += len(text) - len(self._previous)
            self.keystrokes += keystrokes
            word = split_typing(self._previous).prefix
            if word and not split_typing(text).prefix:
                self._finish(word)
        self._previous = text

    def _finish(self, word: str) -> None:
        self.words += 1
        self._hits.append(int(word.lower() in self._first))
        self.points.append(ChartPoint(self.words, self.hit_rate, self.saved))

    @property
    def hit_rate(self) -> float:
        return 100.0 * sum(self._hits) / len(self._hits) if self._hits else 0.0

    @property
    def saved(self) -> float:
        return 100.0 * (1 - self.keystrokes / self.characters) if self.characters else 0.0
