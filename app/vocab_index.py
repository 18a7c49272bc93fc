"""Lookup tables over the tokenizer's pieces for spelling words: which pieces start, continue or end a word.

Built once per tokenizer; answers "which pieces are compatible with this required text" in microseconds.
"""
from __future__ import annotations

import bisect
from functools import lru_cache

import torch

from app.words import is_word_char
from models.tokenizer import Tokenizer


def word_part(text: str) -> tuple[str, bool]:
    """The leading run of word characters of `text`, and whether a non-word character follows it."""
    for i, ch in enumerate(text):
        if not is_word_char(ch):
            return text[:i], True
    return text, False


class VocabIndex:
    def __init__(self, tokenizer: Tokenizer):
        self.pieces = tokenizer.pieces
        self.lower = [p.lower() for p in self.pieces]
        n = len(self.pieces)
        order = sorted((p, i) for i, p in enumerate(self.lower) if p)
        self._sorted = [p for p, _ in order]
        self._sorted_ids = [i for _, i in order]
        self._longest = max(map(len, self.lower))
        self._by_text: dict[str, list[int]] = {}
        for i, p in enumerate(self.lower):
            if p:
                self._by_text.setdefault(p, []).append(i)
        starts_word = [bool(p) and is_word_char(p[0]) for p in self.pieces]
        # After a word, any piece that does not continue it ends it: spaces, punctuation, bytes, controls.
        self.boundary_ids = torch.tensor([i for i in range(n) if not starts_word[i]], dtype=torch.long)
        self.continue_ids = torch.tensor([i for i in range(n) if starts_word[i]], dtype=torch.long)

    @lru_cache(maxsize=4096)
    def compatible(self, required: str) -> tuple[torch.Tensor, tuple[str, ...]]:
        """Pieces that spell a prefix of `required` (lower case) or spell all of it and go on.

        Returns their ids and, for each, what it adds beyond `required` ("" if it stops inside it).
        Pieces that go past `required` must add word characters, optionally closed by punctuation.
        """
        ids, extra = [], []
        for k in range(1, min(len(required), self._longest + 1)):
            for i in self._by_text.get(required[:k], ()):
                ids.append(i)
                extra.append("")
        lo = bisect.bisect_left(self._sorted, required)
        hi = bisect.bisect_left(self._sorted, required + "\U0010ffff")
        for pos in range(lo, hi):
            i = self._sorted_ids[pos]
            rest = self.pieces[i][len(required):]
            if rest and not is_word_char(rest[0]):
                continue
            ids.append(i)
            extra.append(rest)
        return torch.tensor(ids, dtype=torch.long), tuple(extra)
