"""A compact count-based word prior: pruned 1-3-gram counts of the pretraining text, smoothed by interpolated
absolute discounting, with prefix lookups in sorted arrays (saved as npz, no pickle).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.ngram_counts import NgramCounts
from models.ngrams import corpus_counts
from models.safe_io import atomic_write_bytes

DISCOUNT = 0.75


@dataclass
class PriorTables:
    """Word ids are positions in `words`, which is sorted, so a typed prefix is a range of ids."""

    words: list[str]
    unigram: np.ndarray          # count per word
    big_offsets: np.ndarray      # CSR over the first word: rows of big_next/big_count
    big_next: np.ndarray
    big_count: np.ndarray
    big_total: np.ndarray        # per first word: all bigram counts before pruning, and their types
    big_types: np.ndarray
    tri_keys: np.ndarray         # sorted (w1 * V + w2) of every kept trigram context
    tri_offsets: np.ndarray
    tri_next: np.ndarray
    tri_count: np.ndarray
    tri_total: np.ndarray
    tri_types: np.ndarray

    def save(self, path: str | Path) -> None:
        import io

        buffer = io.BytesIO()
        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        words = np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8)
        np.savez_compressed(buffer, words=words, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "PriorTables":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        words = arrays.pop("words").tobytes().decode("utf-8").split("\n")
        return cls(words=words, **arrays)


class WordPrior:
    """P(word | previous two words) and the likeliest words for a context and typed prefix."""

    def __init__(self, tables: PriorTables):
        self.t = tables
        self.index = {w: i for i, w in enumerate(tables.words)}
        self.total = float(tables.unigram.sum())
        self.V = np.int64(len(tables.words))

    @classmethod
    def load(cls, path: str | Path) -> "WordPrior":
        return cls(PriorTables.load(path))

    def _id(self, word: str) -> int:
        return self.index.get(word.lower(), -1)

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        prefix = prefix.lower()
        return (bisect.bisect_left(self.t.words, prefix), bisect.bisect_left(self.t.words, prefix + "\U0010ffff"))

    def _bigram_row(self, w1: int) -> slice:
        return slice(int(self.t.big_offsets[w1]), int(self.t.big_offsets[w1 + 1]))

    def _trigram_row(self, w1: int, w2: int) -> tuple[int, slice]:
        key = w1 * self.V + w2
        pos = int(np.searchsorted(self.t.tri_keys, key))
        if pos < len(self.t.tri_keys) and self.t.tri_keys[pos] == key:
            return pos, slice(int(self.t.tri_offsets[pos]), int(self.t.tri_offsets[pos + 1]))
        return -1, slice(0, 0)

    @staticmethod
    def _count_in(next_ids: np.ndarray, counts: np.ndarray, row: slice, word: int) -> int:
        ids = next_ids[row]
        pos = int(np.searchsorted(ids, word))
        return int(counts[row][pos]) if pos < len(ids) and ids[pos] == word else 0

    def probability(self, history: tuple[str, str], word: str) -> float:
        """Interpolated absolute-discounting trigram probability; history is (older, newer), "" if none."""
        t, w = self.t, self._id(word)
        if w < 0:
            return 0.5 / self.total  # unseen word: well below any counted one
        p = t.unigram[w] / self.total
        u, v = self._id(history[0]), self._id(history[1])
        if v >= 0 and t.big_total[v] > 0:
            c = self._count_in(t.big_next, t.big_count, self._bigram_row(v), w)
            p = (max(c - DISCOUNT, 0.0) + DISCOUNT * t.big_types[v] * p) / t.big_total[v]
            if u >= 0:
                pos, row = self._trigram_row(u, v)
                if pos >= 0:
                    c = self._count_in(t.tri_next, t.tri_count, row, w)
                    p = (max(c - DISCOUNT, 0.0) + DISCOUNT * t.tri_types[pos] * p) / t.tri_total[pos]
        return float(p)

    def candidates(self, history: tuple[str, str], prefix: str, k: int) -> list[str]:
        """Up to `k` words starting with `prefix`: the most frequent after the history, then overall."""
        lo, hi = self._prefix_range(prefix)
        if lo >= hi:
            return []
        out: list[int] = []
        u, v = self._id(history[0]), self._id(history[1])
        rows = []
        if u >= 0 and v >= 0:
            pos, row = self._trigram_row(u, v)
            rows.append((self.t.tri_next, self.t.tri_count, row))
        if v >= 0:
            rows.append((self.t.big_next, self.t.big_count, self._bigram_row(v)))
        for next_ids, counts, row in rows:
            ids, cnt = next_ids[row], counts[row]
            a, b = np.searchsorted(ids, lo), np.searchsorted(ids, hi)
            out.extend(_top(ids[a:b], cnt[a:b], k))
        out.extend(lo + i for i in _top(np.arange(hi - lo), self.t.unigram[lo:hi], k))
        seen, words = set(), []
        for i in out:
            if i not in seen:
                seen.add(i)
                words.append(self.t.words[i])
        return words[: 2 * k]


def _top(ids: np.ndarray, counts: np.ndarray, k: int) -> list[int]:
    if len(ids) == 0:
        return []
    if len(ids) > k:
        part = np.argpartition(-counts, k - 1)[:k]
        part = part[np.argsort(-counts[part], kind="stable")]
    else:
        part = np.argsort(-counts, kind="stable")
    return [int(i) for i in ids[part]]


def build_tables(counts: NgramCounts, max_words: int = 60_000, min_bigram: int = 2, min_trigram: int = 3
                 ) -> PriorTables:
    """Prune counts into sorted arrays: the `max_words` most frequent words, and the 2- and 3-grams
    over them seen at least `min_bigram` / `min_trigram` times. Context totals keep every count."""
    # Only words of letters and digits: the blogs hold mojibake such as "donâ€™t" that no one types.
    by_count = np.argsort(-counts.unigrams, kind="stable")
    top = np.array([i for i in by_count[:3 * max_words] if counts.words[i].isalnum()][:max_words], dtype=np.int64)
    kept = sorted(counts.words[i] for i in top)
    V = len(kept)
    new_id = np.full(len(counts.words), -1, np.int64)
    position = {w: i for i, w in enumerate(kept)}
    for old in top:
        new_id[old] = position[counts.words[old]]
    unigram = np.zeros(V, np.int64)
    unigram[new_id[top]] = counts.unigrams[top]

    a, b = new_id[counts.bigrams[:, 0]], new_id[counts.bigrams[:, 1]]
    ok = a >= 0
    big_total = np.bincount(a[ok], weights=counts.bigram_counts[ok], minlength=V).astype(np.int64)
    big_types = np.bincount(a[ok], minlength=V).astype(np.int32)
    keep = ok & (b >= 0) & (counts.bigram_counts >= min_bigram)
    order = np.lexsort((b[keep], a[keep]))
    big_first, big_next, big_count = a[keep][order], b[keep][order], counts.bigram_counts[keep][order]
    big_offsets = np.searchsorted(big_first, np.arange(V + 1)).astype(np.int64)

    a, b, c = (new_id[counts.trigrams[:, k]] for k in range(3))
    ok = (a >= 0) & (b >= 0)
    context = a * V + b
    tri_ctx, inverse = np.unique(context[ok], return_inverse=True)
    totals = np.bincount(inverse, weights=counts.trigram_counts[ok]).astype(np.int64)
    types = np.bincount(inverse).astype(np.int32)
    keep = ok & (c >= 0) & (counts.trigram_counts >= min_trigram)
    order = np.lexsort((c[keep], context[keep]))
    tri_context, tri_next, tri_count = context[keep][order], c[keep][order], counts.trigram_counts[keep][order]
    tri_keys = np.unique(tri_context)
    where = np.searchsorted(tri_ctx, tri_keys)
    id_type = np.uint16 if V <= 65535 else np.int32
    return PriorTables(
        words=kept, unigram=unigram, big_offsets=big_offsets, big_next=big_next.astype(id_type),
        big_count=big_count.astype(np.int32), big_total=big_total, big_types=big_types,
        tri_keys=tri_keys, tri_offsets=np.searchsorted(tri_context, np.append(tri_keys, np.iinfo(np.int64).max)),
        tri_next=tri_next.astype(id_type), tri_count=tri_count.astype(np.int32),
        tri_total=totals[where], tri_types=types[where])


def build_prior(corpora: list[str | Path], out: str | Path, max_words: int = 60_000) -> PriorTables:
    """Count the pretraining text (held-out documents excluded) and save the pruned prior."""
    tables = build_tables(corpus_counts(corpora), max_words=max_words)
    tables.save(out)
    return tables
