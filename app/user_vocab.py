"""The words a user has typed: how often, in which spelling, found by prefix.

The predictor offers them as candidates for the neural model to score, so a learned name can be suggested at all.
"""
from __future__ import annotations

import bisect
from collections import Counter

from app.ksr import tokens


class UserVocabulary:
    def __init__(self, sentences: list[str] = ()):
        self.counts: Counter[str] = Counter()
        self.forms: dict[str, str] = {}
        self._sorted: list[str] | None = None
        for sentence in sentences:
            self.add_sentence(sentence)

    def add_sentence(self, sentence: str) -> None:
        for position, token in enumerate(tokens(sentence)):
            key = token.text.lower()
            self.counts[key] += 1
            if key not in self.forms or position > 0:  # a capital at a sentence start says nothing of the word
                self.forms[key] = token.text
        self._sorted = None

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    def __len__(self) -> int:
        return len(self.counts)

    def with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Spellings of the `limit` most frequent words that start with `prefix` (case ignored) and go on."""
        if self._sorted is None:
            self._sorted = sorted(self.counts)
        key = prefix.lower()
        lo = bisect.bisect_right(self._sorted, key)
        hi = bisect.bisect_left(self._sorted, key + "\U0010ffff")
        found = sorted(self._sorted[lo:hi], key=lambda w: -self.counts[w])[:limit]
        return [self.forms[w] for w in found]
