"""A compact count-based word prior: interpolated Kneser-Ney over pruned 1-4-gram counts of the pretraining text,
with prefix lookups in sorted arrays (saved as npz, no pickle).
"""
from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from models.ngram_counts import count_in_vocabulary, word_frequencies
from models.safe_io import atomic_write_bytes

FALLBACK_DISCOUNT = 0.75  # for counts too few to estimate the discounts from
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


@dataclass
class PriorConfig:
    max_words: int = 60_000
    order: int = 4
    min_counts: tuple[int, ...] = (1, 2, 2)  # a 2-, 3-, 4-gram is kept if seen at least this often

    def __post_init__(self) -> None:
        if self.order < 2 or len(self.min_counts) != self.order - 1:
            raise ValueError(f"an order-{self.order} prior needs order - 1 minimum counts, got {self.min_counts}")


def choose_words(frequencies: dict[str, int], max_words: int) -> list[str]:
    """The most frequent words made of letters and digits, sorted. The blogs hold mojibake such as "donâ€™t"
    that no one types."""
    ranked = sorted(frequencies.items(), key=lambda kv: (-kv[1], kv[0]))
    return sorted([w for w, _ in ranked if w.isalnum()][:max_words])


def kneser_ney_counts(grams: list[tuple[np.ndarray, np.ndarray]], base: int) -> list[np.ndarray]:
    """Per order, the count each n-gram stands for: raw counts at the top order; below it, the number of
    distinct words seen before the n-gram (its continuation count, at least 1)."""
    out = []
    for n in range(1, len(grams)):
        tails, seen = np.unique(_pack(grams[n][0][:, 1:], base), return_counts=True)
        keys = _pack(grams[n - 1][0], base)
        pos = np.searchsorted(tails, keys)
        found = np.zeros(len(keys), bool)
        inside = pos < len(tails)
        found[inside] = tails[pos[inside]] == keys[inside]
        continuation = np.ones(len(keys), np.int64)
        continuation[found] = seen[pos[found]]
        out.append(continuation)
    out.append(grams[-1][1])
    return out


def _pack(rows: np.ndarray, base: int) -> np.ndarray:
    """Rows of ids below `base` as one sortable unsigned 64-bit key each."""
    key = np.zeros(len(rows), np.uint64)
    for k in range(rows.shape[1]):
        key = key * np.uint64(base) + rows[:, k].astype(np.uint64)
    return key


def build_tables(words: list[str], grams: list[tuple[np.ndarray, np.ndarray]], min_counts: Sequence[int]
                 ) -> PriorTables:
    """Prune the counts of `count_in_vocabulary` into sorted arrays with Kneser-Ney statistics."""
    V = len(words)
    kn = kneser_ney_counts(grams, V + 1)
    unigram = np.zeros(V, np.int64)
    ids, counts = grams[0][0][:, 0], kn[0]
    unigram[ids[ids < V]] = counts[ids < V]
    levels = []
    for n in range(2, len(grams) + 1):
        rows, raw = grams[n - 1]
        levels.append(_level(rows, raw, kn[n - 1], V, min_counts[n - 2]))
    return PriorTables(words=words, unigram=unigram, levels=levels)


def _level(rows: np.ndarray, raw: np.ndarray, stat: np.ndarray, V: int, min_count: int) -> ContextLevel:
    context = _pack(rows[:, :-1], V).astype(np.int64)  # below V**3: fits, and compares with WordPrior's keys
    known = (rows[:, :-1] < V).all(axis=1)  # contexts with an unknown word are never looked up
    keys, inverse = np.unique(context[known], return_inverse=True)
    total = np.bincount(inverse, weights=stat[known]).astype(np.int64)
    discounts = _discounts(stat[known])
    backoff = np.bincount(inverse, weights=discounts[np.minimum(stat[known], 3) - 1]).astype(np.float32)
    keep = known & (rows[:, -1] < V) & (raw >= min_count)
    order = np.lexsort((rows[keep, -1], context[keep]))
    kept_context, nxt, cnt = context[keep][order], rows[keep, -1][order], stat[keep][order]
    kept_keys = np.unique(kept_context)
    where = np.searchsorted(keys, kept_keys)
    return ContextLevel(keys=kept_keys, offsets=np.searchsorted(kept_context, np.append(kept_keys, np.iinfo(np.int64).max)),
                        next=nxt.astype(np.uint16 if V <= 65535 else np.int32), count=cnt.astype(np.int32),
                        total=total[where], backoff=backoff[where], discounts=discounts)


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Chen & Goodman's estimates of the best discounts for counts of 1, 2 and 3+ from the counts of counts."""
    n1, n2, n3, n4 = (float((counts == k).sum()) for k in range(1, 5))
    if min(n1, n2, n3, n4) == 0:
        return np.full(3, FALLBACK_DISCOUNT, np.float32)
    y = n1 / (n1 + 2 * n2)
    return np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3], np.float32)


def tables_from_documents(documents: Callable[[], Iterable[str]], config: PriorConfig = PriorConfig(),
                          total_chars: float = 0.0) -> PriorTables:
    """Two passes over the documents: word frequencies choose the vocabulary, then its n-grams are counted."""
    words = choose_words(word_frequencies(documents()), config.max_words)
    grams = count_in_vocabulary(documents(), words, config.order, total_chars=total_chars)
    return build_tables(words, grams, config.min_counts)


def build_prior(corpora: list[str | Path], out: str | Path, config: PriorConfig = PriorConfig()) -> PriorTables:
    """Count the pretraining text (held-out documents excluded) and save the pruned prior."""
    from models.corpus import training_documents
    from models.ngrams import estimated_chars

    tables = tables_from_documents(lambda: training_documents(corpora), config, estimated_chars(corpora))
    tables.save(out)
    return tables
