"""The sources besides the model that propose and score next words: the count prior and the user's own statistics
(the words they typed before and lately in this text). Each answers `propose` and `score`, as Presage's predictors do;
the combiner mixes their scores with the model's.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Protocol

from app.typing.user_vocab import CacheWeights, UserVocabulary
from app.typing.words import TypingState, words_of
from models.word_prior import WordPrior

RECENT_CHARS = 2000  # the text before the cursor whose words count as typed by the user (candidates, and known)


@dataclass(frozen=True)
class Query:
    """What a keystroke asks: the text split for prediction, and the words before the one being typed."""

    state: TypingState
    history: tuple[str, ...]


class WordSource(Protocol):
    def propose(self, query: Query, k: int) -> list[str]:
        """Up to `k` words that complete the prefix, likeliest first."""

    def score(self, query: Query, words: Iterable[str]) -> dict[str, float]:
        """This source's value for each (lower-case) word."""


class PriorSource:
    """The count prior, its answers kept while the words before the one being typed stay the same (a word's
    keystrokes ask the same questions)."""

    def __init__(self, prior: WordPrior):
        self.prior = prior
        self._history: tuple[str, ...] | None = None
        self._probability: dict[str, float] = {}
        self._candidates: dict[tuple[str, int], list[str]] = {}

    def _at(self, history: tuple[str, ...]) -> None:
        if history != self._history:
            self._history, self._probability, self._candidates = history, {}, {}

    def propose(self, query: Query, k: int) -> list[str]:
        self._at(query.history)
        key = (query.state.prefix, k)
        if key not in self._candidates:
            self._candidates[key] = self.prior.candidates(query.history, query.state.prefix, k)
        return self._candidates[key]

    def score(self, query: Query, words: Iterable[str]) -> dict[str, float]:
        """The prior's probability of each word after the history."""
        self._at(query.history)
        words = set(words)
        todo = [w for w in words if w not in self._probability]
        if todo:
            self._probability.update(self.prior.probabilities(query.history, todo))
        return {w: self._probability[w] for w in words}

    def unigram(self, word: str) -> float:
        return self.prior.unigram_probability(word)


class TextWords:
    """The words of the text typed lately: in order (lower case), how often each came, each one's latest spelling
    (latest first), and what came after a word (counted when asked)."""

    def __init__(self, tail: str):
        self.tail = tail
        spelled = words_of(tail)
        self.words = [w.lower() for w in spelled]
        self.counts = Counter(self.words)
        self.forms: dict[str, str] = {}
        for key, word in zip(reversed(self.words), reversed(spelled)):
            self.forms.setdefault(key, word)
        self._after: dict[str, Counter[str]] = {}

    def after(self, key: str) -> Counter[str]:
        """The words that came after `key` (lower case) in the text, how often each."""
        if key not in self._after:
            w = self.words
            self._after[key] = Counter(w[i + 1] for i in range(len(w) - 1) if w[i] == key)
        return self._after[key]


class UserSource:
    """The words the user typed (their statistics, `UserVocabulary`) and the words typed lately in this text."""

    def __init__(self, words: UserVocabulary | None = None):
        self.words = words or UserVocabulary()
        self.weights = CacheWeights()  # scaled by the combiner: what the user's statistics add
        self._text = TextWords("")

    def knows(self, key: str, context: str) -> bool:
        return key in self.words or key in self.recent(context)

    def text_words(self, context: str) -> TextWords:
        """The words of the context's last `RECENT_CHARS` characters."""
        tail = context[-RECENT_CHARS:]
        if len(context) > RECENT_CHARS:  # the cut may fall inside a word: its end is no word the user typed
            tail = tail[next((i for i, ch in enumerate(tail) if ch.isspace()), len(tail)):]
        if self._text.tail != tail:
            self._text = TextWords(tail)
        return self._text

    def recent(self, context: str) -> dict[str, str]:
        """The words typed lately (`text_words`), lower case -> latest spelling, latest first."""
        return self.text_words(context).forms

    def form(self, key: str, context: str) -> str:
        """How the user spells the (lower-case) word: as their statistics hold it, else as they typed it lately."""
        return self.words.forms.get(key) or self.recent(context).get(key, key)

    def text_followers(self, query: Query, k: int) -> list[str]:
        """The words that came after the last word in the text typed lately and complete the prefix, most often
        first (lower case)."""
        after = self.text_words(query.state.context).after(query.history[-1]) if query.history else None
        prefix = query.state.prefix.lower()
        return [w for w, _ in after.most_common() if w.startswith(prefix)][:k] if after else []

    def text_probabilities(self, query: Query, words: Iterable[str]
                           ) -> tuple[dict[str, float] | None, dict[str, float] | None]:
        """Each word's share of the words typed lately, and of the words that came after the last word there (None
        where the text has none): a cache model of the text at hand (Kuhn & De Mori 1990)."""
        text = self.text_words(query.state.context)
        after = text.after(query.history[-1]) if query.history else None
        words = list(words)
        shares = {w: text.counts[w] / len(text.words) for w in words} if text.words else None
        pairs = {w: after[w] / after.total() for w in words} if after else None
        return shares, pairs

    def propose(self, query: Query, k: int) -> list[str]:
        """The user's most frequent words with the prefix, in their spelling."""
        return self.words.with_prefix(query.state.prefix, k) if query.state.prefix else []

    def followers(self, query: Query, k: int) -> list[str]:
        """Words the user typed after the last word or two that complete the prefix (none with pairs left out)."""
        if not self.weights.pairs:
            return []
        return self.words.followers(query.history, query.state.prefix, k)
