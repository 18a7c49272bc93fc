"""Word 1-, 2- and 3-gram counts of a corpus, tokenised as Presage tokenises (lower case, split at blanks and
punctuation, the apostrophe included), counted with numpy so 25 M words take minutes and a few GB.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from models.progress import Progress

_WORD = re.compile(r"[^" + re.escape(string.whitespace + string.punctuation) + r"]+")


def presage_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class NgramCounts:
    """Distinct n-grams as rows of word ids into `words`, with their counts."""

    words: list[str]
    unigrams: np.ndarray            # count per word id
    bigrams: np.ndarray             # (n, 2) ids
    bigram_counts: np.ndarray
    trigrams: np.ndarray            # (n, 3) ids
    trigram_counts: np.ndarray


def count_ngrams(documents: Iterable[str], chunk_words: int = 4_000_000, total_chars: float = 0.0) -> NgramCounts:
    """Count within documents (no n-gram spans two). Chunks are reduced as they fill to bound memory."""
    index: dict[str, int] = {}
    parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {1: [], 2: [], 3: []}
    pending: list[np.ndarray] = []
    size, chars = 0, 0
    bar = Progress(total_chars or 1, "counting n-grams", " chars")
    for doc in documents:
        ids = np.fromiter((index.setdefault(w, len(index)) for w in presage_words(doc)), dtype=np.int64)
        pending.append(ids)
        size += len(ids)
        chars += len(doc)
        if size >= chunk_words:
            _reduce_chunk(pending, parts)
            pending, size = [], 0
            bar.update(chars)
    _reduce_chunk(pending, parts)
    bar.close()
    if len(index) >= _BASE:
        raise ValueError(f"{len(index):,} distinct words: n-gram keys hold at most {int(_BASE):,}")
    words = [""] * len(index)
    for w, i in index.items():
        words[i] = w
    V = len(words)
    uni_keys, uni_counts = _merge(parts[1])
    unigrams = np.zeros(V, np.int64)
    unigrams[uni_keys] = uni_counts
    bi_keys, bi_counts = _merge(parts[2])
    tri_keys, tri_counts = _merge(parts[3])
    return NgramCounts(words, unigrams, _split(bi_keys, 2), bi_counts, _split(tri_keys, 3), tri_counts)


_BASE = np.int64(1 << 21)  # word ids are below 2**21, so three fit one int64 key


def _keys(ids: np.ndarray, n: int) -> np.ndarray:
    key = np.zeros(len(ids) - n + 1, np.int64)
    for k in range(n):
        key = key * _BASE + ids[k:len(ids) - n + 1 + k]
    return key


def _reduce_chunk(pending: list[np.ndarray], parts: dict[int, list[tuple[np.ndarray, np.ndarray]]]) -> None:
    for n in (1, 2, 3):
        keys = [_keys(ids, n) for ids in pending if len(ids) >= n]
        if keys:
            parts[n].append(np.unique(np.concatenate(keys), return_counts=True))


def _merge(chunks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.concatenate([k for k, _ in chunks])
    counts = np.concatenate([c for _, c in chunks])
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse, weights=counts).astype(np.int64)


def _split(keys: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(keys), n), np.int64)
    for k in range(n - 1, -1, -1):
        out[:, k] = keys % _BASE
        keys = keys // _BASE
    return out
