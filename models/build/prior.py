"""Building the count prior: choose a vocabulary from the pretraining text, count its 1-4-grams within documents,
prune them and store Kneser-Ney statistics as the sorted arrays `models.word_prior.WordPrior` reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from models.build.corpus import training_documents
from models.build.ngram_counts import Split, count_in_vocabulary, word_frequencies
from models.build.prune import prune
from models.build.ngrams import estimated_chars
from models.prior_tables import ContextLevel, PriorTables, narrow_level

FALLBACK_DISCOUNT = 0.75  # for counts too few to estimate the discounts from


@dataclass
class PriorConfig:
    max_words: int = 60_000
    order: int = 4
    min_counts: tuple[int, ...] = (1, 2, 2)  # a 2-, 3-, 4-gram is kept if seen at least this often
    prune_threshold: float | None = None     # then weighted-difference pruning to this score (models.build.prune)

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


def build_tables(words: list[str], grams: list[tuple[np.ndarray, np.ndarray]], min_counts: Sequence[int],
                 prune_threshold: float | None = None) -> PriorTables:
    """Prune the counts of `count_in_vocabulary` into sorted arrays with Kneser-Ney statistics: by count, then, given
    `prune_threshold`, by weighted difference."""
    V = len(words)
    kn = kneser_ney_counts(grams, V + 1)
    unigram = np.zeros(V, np.int64)
    ids, counts = grams[0][0][:, 0], kn[0]
    unigram[ids[ids < V]] = counts[ids < V]
    built = [_level(*grams[n - 1], kn[n - 1], V, min_counts[n - 2]) for n in range(2, len(grams) + 1)]
    tables = PriorTables(words=words, unigram=unigram, levels=[level for level, _ in built])
    return tables if prune_threshold is None else prune(tables, [raw for _, raw in built], prune_threshold)


def _level(rows: np.ndarray, raw: np.ndarray, stat: np.ndarray, V: int, min_count: int
           ) -> tuple[ContextLevel, np.ndarray]:
    """One order's contexts and the continuations seen at least `min_count` times, with their raw counts."""
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
    offsets = np.searchsorted(kept_context, np.append(kept_keys, np.iinfo(np.int64).max))
    level = ContextLevel(keys=kept_keys, offsets=offsets, next=nxt, count=cnt, total=total[where],
                         backoff=backoff[where], discounts=discounts)
    return narrow_level(level, V), raw[keep][order]


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Chen & Goodman's estimates of the best discounts for counts of 1, 2 and 3+ from the counts of counts."""
    n1, n2, n3, n4 = (float((counts == k).sum()) for k in range(1, 5))
    if min(n1, n2, n3, n4) == 0:
        return np.full(3, FALLBACK_DISCOUNT, np.float32)
    y = n1 / (n1 + 2 * n2)
    return np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3], np.float32)


def tables_from_documents(documents: Callable[[], Iterable[str]], split: Split, config: PriorConfig = PriorConfig(),
                          total_chars: float = 0.0) -> PriorTables:
    """Two passes over the documents: word frequencies choose the vocabulary, then its n-grams are counted."""
    words = choose_words(word_frequencies(documents(), split, total_chars), config.max_words)
    grams = count_in_vocabulary(documents(), split, words, config.order, total_chars=total_chars)
    return build_tables(words, grams, config.min_counts, config.prune_threshold)


def build_prior(corpora: list[str | Path], out: str | Path, split: Split, config: PriorConfig = PriorConfig()
                ) -> PriorTables:
    """Count the pretraining text (held-out documents excluded) and save the pruned prior."""
    tables = tables_from_documents(lambda: training_documents(corpora), split, config, estimated_chars(corpora))
    tables.save(out)
    return tables
