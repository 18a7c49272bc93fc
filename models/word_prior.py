"""A compact count-based word prior: interpolated Kneser-Ney over pruned 1-4-gram counts of the pretraining text,
with prefix lookups in sorted arrays (`models.prior_tables`). `models.build.prior` builds it.
"""
from __future__ import annotations

import bisect
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from models.prior_tables import ContextLevel, PriorTables


class WordPrior:
    """P(word | previous words) and the likeliest words for a context and typed prefix."""

    def __init__(self, tables: PriorTables):
        self.t = tables
        self.total = float(tables.unigram.sum())
        self.V = np.int64(len(tables.words))
        self.order = len(tables.levels) + 1

    @classmethod
    def load(cls, path: str | Path, cache_dir: str | Path | None = None) -> "WordPrior":
        """The prior in `path` (with `cache_dir`, its arrays memory-mapped from there: `PriorTables.load`)."""
        return cls(PriorTables.load(path, cache_dir))

    def __contains__(self, word: str) -> bool:
        """Whether the prior knows `word` (any case)."""
        return self._id(word) >= 0

    def _id(self, word: str) -> int:
        """The word's id (a position in the sorted words: no dictionary of 60,000 strings held), -1 if unknown."""
        word = word.lower()
        i = bisect.bisect_left(self.t.words, word)
        return i if i < len(self.t.words) and self.t.words[i] == word else -1

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        prefix = prefix.lower()
        return (bisect.bisect_left(self.t.words, prefix), bisect.bisect_left(self.t.words, prefix + "\U0010ffff"))

    def _contexts(self, history: Sequence[str]) -> Iterable[tuple[ContextLevel, int, slice]]:
        """The kept contexts the history ends with, shortest first: (level, context index, its rows)."""
        ids = [self._id(w) for w in history[-len(self.t.levels):]]
        for n, level in enumerate(self.t.levels, start=1):
            if n > len(ids) or ids[-n] < 0:
                return
            key = np.int64(0)
            for i in ids[-n:]:
                key = key * self.V + i
            pos = int(np.searchsorted(level.keys, key))
            if pos < len(level.keys) and level.keys[pos] == key:
                yield level, pos, slice(int(level.offsets[pos]), int(level.offsets[pos + 1]))

    def probability(self, history: Sequence[str], word: str) -> float:
        """Interpolated Kneser-Ney probability of `word` after `history` (the words before it, oldest first)."""
        return self.probabilities(history, [word])[word]

    def probabilities(self, history: Sequence[str], words: Iterable[str]) -> dict[str, float]:
        """`probability` of each word, the history's contexts looked up once."""
        contexts = list(self._contexts(history))
        out = {}
        for word in words:
            w = self._id(word)
            if w < 0:
                out[word] = 0.5 / self.total  # unseen word: well below any counted one
                continue
            p = self.t.unigram[w] / self.total
            for level, pos, row in contexts:
                ids = level.next[row]
                i = int(np.searchsorted(ids, w))
                c = int(level.count[row][i]) if i < len(ids) and ids[i] == w else 0
                kept = c - level.discounts[min(c, 3) - 1] if c else 0.0
                p = (kept + level.backoff[pos] * p) / level.total[pos]
            out[word] = float(p)
        return out

    def unigram_probability(self, word: str) -> float:
        """The word's Kneser-Ney unigram probability, with no context (0 for a word the prior does not know)."""
        w = self._id(word)
        return float(self.t.unigram[w] / self.total) if w >= 0 else 0.0

    def candidates(self, history: Sequence[str], prefix: str, k: int) -> list[str]:
        """Up to 2k words starting with `prefix`: the most frequent after the longest known context first."""
        lo, hi = self._prefix_range(prefix)
        if lo >= hi:
            return []
        out: list[int] = []
        for level, _, row in reversed(list(self._contexts(history))):
            ids, cnt = level.next[row], level.count[row]
            a, b = np.searchsorted(ids, lo), np.searchsorted(ids, hi)
            out.extend(_top(ids[a:b], cnt[a:b], k))
        out.extend(lo + i for i in _top(np.arange(hi - lo), self.t.unigram[lo:hi], k))
        return [self.t.words[i] for i in dict.fromkeys(out)][: 2 * k]


def _top(ids: np.ndarray, counts: np.ndarray, k: int) -> list[int]:
    if len(ids) == 0:
        return []
    if counts.dtype.itemsize < 4:  # ranked as 32-bit counts whatever width they are stored in: numpy partitions
        counts = counts.astype(np.int32)  # each width its own way, and words of equal count would come out otherwise
    if len(ids) > k:
        part = np.argpartition(-counts, k - 1)[:k]
        part = part[np.argsort(-counts[part], kind="stable")]
    else:
        part = np.argsort(-counts, kind="stable")
    return [int(i) for i in ids[part]]
