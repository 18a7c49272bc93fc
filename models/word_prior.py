"""A compact count-based word prior: interpolated Kneser-Ney over pruned 1-4-gram counts of the pretraining text,
with prefix lookups in sorted arrays (saved as npz, no pickle). `models.build.prior` builds it.
"""
from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from models.safe_io import atomic_write_bytes

LEVEL_FIELDS = ("keys", "offsets", "next", "count", "total", "backoff", "discounts")


@dataclass
class ContextLevel:
    """Every kept context of one length: `keys` are the contexts' word ids packed in base V, sorted; context i's
    continuations are next/count[offsets[i]:offsets[i + 1]], sorted by word id. `total` and `backoff` (the
    discounts taken from the context's counts) hold every count before pruning, unknown words included, so
    pruned continuations keep their share. `discounts` are taken from counts of 1, 2 and 3 or more
    (modified Kneser-Ney, Chen & Goodman 1998)."""

    keys: np.ndarray
    offsets: np.ndarray
    next: np.ndarray
    count: np.ndarray
    total: np.ndarray
    backoff: np.ndarray
    discounts: np.ndarray


@dataclass
class PriorTables:
    """Word ids are positions in `words`, which is sorted, so a typed prefix is a range of ids."""

    words: list[str]
    unigram: np.ndarray          # Kneser-Ney continuation count per word: after how many distinct words it came
    levels: list[ContextLevel]   # contexts of 1, 2, ... words

    def save(self, path: str | Path) -> None:
        arrays = {"unigram": self.unigram,
                  "words": np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8)}
        for n, level in enumerate(self.levels, start=1):
            arrays.update({f"context{n}_{name}": getattr(level, name) for name in LEVEL_FIELDS})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "PriorTables":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        levels = []
        while f"context{len(levels) + 1}_keys" in arrays:
            n = len(levels) + 1
            levels.append(ContextLevel(**{name: arrays[f"context{n}_{name}"] for name in LEVEL_FIELDS}))
        words = arrays["words"].tobytes().decode("utf-8").split("\n")
        return cls(words=words, unigram=arrays["unigram"], levels=levels)


class WordPrior:
    """P(word | previous words) and the likeliest words for a context and typed prefix."""

    def __init__(self, tables: PriorTables):
        self.t = tables
        self.index = {w: i for i, w in enumerate(tables.words)}
        self.total = float(tables.unigram.sum())
        self.V = np.int64(len(tables.words))
        self.order = len(tables.levels) + 1

    @classmethod
    def load(cls, path: str | Path) -> "WordPrior":
        return cls(PriorTables.load(path))

    def _id(self, word: str) -> int:
        return self.index.get(word.lower(), -1)

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
    if len(ids) > k:
        part = np.argpartition(-counts, k - 1)[:k]
        part = part[np.argsort(-counts[part], kind="stable")]
    else:
        part = np.argsort(-counts, kind="stable")
    return [int(i) for i in ids[part]]
