"""The words a user has typed: how often, in which spelling, after which words, found by prefix.

The predictor offers them as candidates for the neural model to score, so a learned name can be suggested at all,
and adds the user's own word and word-pair frequencies to the mix (a cache model, Kuhn & De Mori 1990).
"""
from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

from app.typing.words import tokens

CONTEXT_WORDS = 2  # followers are counted after the last word and after the last two words
RECENT_WORDS = 100.0  # a word's recency share halves over about 70 words the user types after it


@dataclass
class CacheWeights:
    """How much the user's own statistics add to a word's probability (tuned on dev users 21-28)."""

    unigram: float = 0.1        # times the word's share of everything the user typed ...
    recent: float = 0.05        # ... and times its share of what they typed lately (each use fading with age) ...
    rare_below: float = 1e-4    # ... for words the general prior gives less than this (common words need no help)
    bigram: float = 0.02        # times how often the word followed the previous word
    trigram: float = 0.02       # times how often it followed the previous two

    @classmethod
    def none(cls) -> "CacheWeights":
        """The user's statistics left out: the model (and the count prior) alone."""
        return cls(unigram=0.0, recent=0.0, bigram=0.0, trigram=0.0)

    def scaled(self, share: float) -> "CacheWeights":
        """These weights times `share` (the rare-word threshold stays)."""
        return CacheWeights(self.unigram * share, self.recent * share, self.rare_below, self.bigram * share,
                            self.trigram * share)

    @property
    def pairs(self) -> bool:
        """Whether what followed the last words counts (then those followers are ranked as candidates too)."""
        return bool(self.bigram or self.trigram)


class UserVocabulary:
    def __init__(self, sentences: Sequence[str] = ()):
        self.counts: Counter[str] = Counter()
        self.forms: dict[str, str] = {}
        self.total = 0
        self.after: defaultdict[tuple[str, ...], Counter[str]] = defaultdict(Counter)  # context -> next words
        self.after_total: Counter[tuple[str, ...]] = Counter()
        self._recent: tuple[str, ...] = ()  # the last words added: the next sentence follows them
        self._faded: dict[str, tuple[float, int]] = {}  # word -> its uses, each fading with age, as of position
        self._sorted: list[str] | None = None
        for sentence in sentences:
            self.add_sentence(sentence)

    def add_sentence(self, sentence: str) -> None:
        for position, token in enumerate(tokens(sentence)):
            key = token.text.lower()
            self.counts[key] += 1
            self._faded[key] = (self.recency_weight(key) + 1.0, self.total)
            self.total += 1
            if key not in self.forms or position > 0:  # a capital at a sentence start says nothing of the word
                self.forms[key] = token.text
            for n in range(1, min(CONTEXT_WORDS, len(self._recent)) + 1):
                self.after[self._recent[-n:]][key] += 1
                self.after_total[self._recent[-n:]] += 1
            self._recent = (self._recent + (key,))[-CONTEXT_WORDS:]
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

    def followers(self, history: Sequence[str], prefix: str, limit: int) -> list[str]:
        """Up to `limit` words (lower case) the user most often typed after the history's last two words, then as
        many after its last word, that start with `prefix` and go on."""
        key = prefix.lower()
        out: list[str] = []
        for n in range(min(CONTEXT_WORDS, len(history)), 0, -1):
            seen = self.after.get(tuple(history[-n:]))
            if seen:
                matching = ((-c, w) for w, c in seen.items() if w.startswith(key) and w != key)
                out += [w for _, w in heapq.nsmallest(limit, matching)]
        return list(dict.fromkeys(out))

    def recency_weight(self, word: str) -> float:
        """The word's uses, each counting exp(-age / RECENT_WORDS) with age in words typed since."""
        value, at = self._faded.get(word, (0.0, self.total))
        return value * math.exp(-(self.total - at) / RECENT_WORDS)

    def recency_share(self, word: str) -> float:
        """The word's recency weight over all words' (their sum: a geometric series over the words typed)."""
        if not self.total:
            return 0.0
        fade = math.exp(-1 / RECENT_WORDS)
        return self.recency_weight(word) * (1 - fade) / (fade * (1 - fade ** self.total))

    def parts(self, history: Sequence[str], word: str, rare_below: float,
              general: Callable[[str], float]) -> tuple[float, float, float, float]:
        """The user's own probabilities of `word` (lower case) after `history`: its share of what they typed and of
        what they typed lately (both only for words `general` text gives less than `rare_below`: common words need
        no help), and how often it followed the last word and the last two (0 where that context is unseen)."""
        unigram = recent = 0.0
        if self.counts[word] and general(word) < rare_below:
            unigram, recent = self.counts[word] / self.total, self.recency_share(word)
        pairs = []
        for n in (1, 2):
            context = tuple(history[-n:])
            seen = len(history) >= n and context in self.after
            pairs.append(self.after[context][word] / self.after_total[context] if seen else 0.0)
        return unigram, recent, pairs[0], pairs[1]

    def contexts_seen(self, history: Sequence[str]) -> tuple[bool, bool]:
        """Whether the user typed anything after the last word, and after the last two."""
        return tuple(len(history) >= n and tuple(history[-n:]) in self.after for n in (1, 2))
