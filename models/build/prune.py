"""Weighted-difference pruning of the prior's tables (Seymore & Rosenfeld 1996): an n-gram stays if its raw count
times log(p / p_backed_off) reaches a threshold, where p is its interpolated Kneser-Ney probability and p_backed_off
what the context's backoff would give it. It keeps what the lower orders would not predict, whatever its count.
"""
from __future__ import annotations

import numpy as np

from models.prior_tables import ContextLevel, PriorTables, entry_rows, narrow_level


class Interpolation:
    """`WordPrior.probability`, vectorised over many (context, word) pairs of one order, for the tables' own rows."""

    def __init__(self, tables: PriorTables):
        self.t, self.V = tables, np.uint64(len(tables.words))
        self.p0 = tables.unigram.astype(np.float64) / float(tables.unigram.sum())
        self.entries = [level.keys[entry_rows(level.offsets)].astype(np.uint64) * self.V
                        + level.next.astype(np.uint64) for level in tables.levels]  # sorted, as the rows are

    def probability(self, n: int, contexts: np.ndarray, words: np.ndarray) -> np.ndarray:
        """P(word | context of `n` words, packed in base V as the tables pack them), interpolated down to unigrams."""
        if n == 0:
            return self.p0[words]
        level, entries = self.t.levels[n - 1], self.entries[n - 1]
        lower = self.probability(n - 1, contexts % self.V ** np.uint64(n - 1), words)
        pos = np.searchsorted(level.keys.astype(np.uint64), contexts)
        found = pos < len(level.keys)
        found[found] = level.keys[pos[found]].astype(np.uint64) == contexts[found]
        pairs = contexts[found] * self.V + words[found].astype(np.uint64)
        at = np.searchsorted(entries, pairs)
        seen = at < len(entries)
        seen[seen] = entries[at[seen]] == pairs[seen]
        count = np.zeros(len(pairs))
        count[seen] = level.count[at[seen]]
        kept = np.where(count > 0, count - level.discounts[np.clip(count, 1, 3).astype(np.int64) - 1], 0.0)
        out = lower.copy()
        where = pos[found]
        out[found] = (kept + level.backoff[where] * lower[found]) / level.total[where]
        return out


def pruning_scores(tables: PriorTables, raw: list[np.ndarray]) -> list[np.ndarray]:
    """Per order, each continuation's raw count (`raw`, aligned with the tables' rows) x log(p / p_backed_off)."""
    interpolation, scores = Interpolation(tables), []
    for n, (level, counts) in enumerate(zip(tables.levels, raw), start=1):
        rows = entry_rows(level.offsets)
        contexts, words = level.keys[rows].astype(np.uint64), level.next.astype(np.int64)
        p = interpolation.probability(n, contexts, words)
        lower = interpolation.probability(n - 1, contexts % interpolation.V ** np.uint64(n - 1), words)
        backed_off = level.backoff[rows] * lower / level.total[rows]
        scores.append(counts * np.log(np.maximum(p, 1e-30) / np.maximum(backed_off, 1e-30)))
    return scores


def prune(tables: PriorTables, raw: list[np.ndarray], threshold: float) -> PriorTables:
    """The tables keeping the continuations whose score reaches `threshold`, and the contexts that keep any. Totals
    and backoffs stay those of every count, so pruned continuations keep their share as before."""
    levels = []
    for level, score in zip(tables.levels, pruning_scores(tables, raw)):
        keep = score >= threshold
        rows = entry_rows(level.offsets)[keep]
        contexts, per_context = np.unique(rows, return_counts=True)
        levels.append(narrow_level(ContextLevel(
            keys=level.keys[contexts], offsets=np.concatenate([[0], np.cumsum(per_context)]), next=level.next[keep],
            count=level.count[keep], total=level.total[contexts], backoff=level.backoff[contexts],
            discounts=level.discounts), len(tables.words)))
    return PriorTables(words=tables.words, unigram=tables.unigram, levels=levels)
