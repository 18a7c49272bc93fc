"""Word n-gram counts of a corpus, split into words by the caller's `split` (the keyboard passes its one definition
of a word, lower-cased, as Presage tokenises), counted with numpy so 25 M words take minutes and a few GB.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from models.build.progress import advance_to, progress

Split = Callable[[str], list[str]]  # a document's words, in order


@dataclass
class NgramCounts:
    """Distinct n-grams as rows of word ids into `words`, with their counts."""

    words: list[str]
    unigrams: np.ndarray            # count per word id
    bigrams: np.ndarray             # (n, 2) ids
    bigram_counts: np.ndarray
    trigrams: np.ndarray            # (n, 3) ids
    trigram_counts: np.ndarray


_BASE = np.int64(1 << 21)  # open vocabulary: word ids are below 2**21, so three fit one int64 key


def count_ngrams(documents: Iterable[str], split: Split, chunk_words: int = 4_000_000, total_chars: float = 0.0
                 ) -> NgramCounts:
    """1-, 2- and 3-grams over an open vocabulary, counted within documents (no n-gram spans two)."""
    index: dict[str, int] = {}

    def sequences() -> Iterator[tuple[np.ndarray, int]]:
        chars = 0
        for doc in documents:
            chars += len(doc)
            yield np.fromiter((index.setdefault(w, len(index)) for w in split(doc)), dtype=np.int64), chars

    merged = _count(sequences(), 3, _BASE, chunk_words, total_chars)
    if len(index) >= _BASE:
        raise ValueError(f"{len(index):,} distinct words: n-gram keys hold at most {int(_BASE):,}")
    words = [""] * len(index)
    for w, i in index.items():
        words[i] = w
    unigrams = np.zeros(len(words), np.int64)
    unigrams[merged[0][0][:, 0]] = merged[0][1]
    (bigrams, bigram_counts), (trigrams, trigram_counts) = merged[1], merged[2]
    return NgramCounts(words, unigrams, bigrams, bigram_counts, trigrams, trigram_counts)


def word_frequencies(documents: Iterable[str], split: Split, total_chars: float = 0.0) -> Counter:
    """How often each word occurs: what chooses a fixed vocabulary before `count_in_vocabulary`."""
    counts: Counter = Counter()
    with progress(total_chars or None, "counting words", "char") as bar:
        for doc in documents:
            counts.update(split(doc))
            bar.update(len(doc) + 1)
    return counts


def count_in_vocabulary(documents: Iterable[str], split: Split, words: list[str], max_order: int,
                        chunk_words: int = 4_000_000, total_chars: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """For n = 1..max_order, the distinct n-grams as (rows of ids into `words`, counts), counted within documents.

    A word outside `words` is the id len(words), so an n-gram's continuations all count, known or not.
    """
    base = np.uint64(len(words) + 1)
    if float(base) ** max_order >= 2.0 ** 64:
        raise ValueError(f"{len(words):,} words: {max_order}-gram keys do not fit 64 bits")
    index = {w: i for i, w in enumerate(words)}
    other = len(words)

    def sequences() -> Iterator[tuple[np.ndarray, int]]:
        chars = 0
        for doc in documents:
            chars += len(doc)
            yield np.fromiter((index.get(w, other) for w in split(doc)), dtype=np.int64), chars

    return _count(sequences(), max_order, base, chunk_words, total_chars)


def _count(sequences: Iterable[tuple[np.ndarray, int]], max_order: int, base: np.integer, chunk_words: int,
           total_chars: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Chunks are reduced to distinct keys as they fill, which bounds memory; then merged per order."""
    parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in range(1, max_order + 1)}
    pending: list[np.ndarray] = []
    size = 0
    bar = progress(total_chars or None, "counting n-grams", "char")
    for ids, chars in sequences:
        pending.append(ids)
        size += len(ids)
        if size >= chunk_words:
            _reduce_chunk(pending, parts, base)
            pending, size = [], 0
            advance_to(bar, chars)
    _reduce_chunk(pending, parts, base)
    bar.close()
    out = []
    for n in range(1, max_order + 1):
        keys, counts = _merge(parts[n], base.dtype)
        out.append((_split(keys, n, base), counts))
    return out


def _keys(ids: np.ndarray, n: int, base: np.integer) -> np.ndarray:
    ids = ids.astype(base.dtype)
    key = np.zeros(len(ids) - n + 1, base.dtype)
    for k in range(n):
        key = key * base + ids[k:len(ids) - n + 1 + k]
    return key


def _reduce_chunk(pending: list[np.ndarray], parts: dict[int, list[tuple[np.ndarray, np.ndarray]]],
                  base: np.integer) -> None:
    for n in parts:
        keys = [_keys(ids, n, base) for ids in pending if len(ids) >= n]
        if keys:
            parts[n].append(np.unique(np.concatenate(keys), return_counts=True))


def _merge(chunks: list[tuple[np.ndarray, np.ndarray]], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    if not chunks:
        return np.zeros(0, dtype), np.zeros(0, np.int64)
    keys = np.concatenate([k for k, _ in chunks])
    counts = np.concatenate([c for _, c in chunks])
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse, weights=counts).astype(np.int64)


def _split(keys: np.ndarray, n: int, base: np.integer) -> np.ndarray:
    out = np.zeros((len(keys), n), np.int64)
    for k in range(n - 1, -1, -1):
        out[:, k] = (keys % base).astype(np.int64)
        keys = keys // base
    return out
