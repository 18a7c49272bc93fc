"""Mixing the sources' opinions into one value per word (Presage's Combiner): the model's probability interpolated
with the count prior's, the text typed lately (a cache) and the user's own statistics, by weights that start as
configured and adapt to the user as they type (`MixtureWeights`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from app.typing.mixture import AdaptConfig, MixtureWeights
from app.typing.sources import PriorSource, Query, UserSource
from app.typing.user_vocab import CacheWeights
from app.typing.words import TypingState, words_of


@dataclass
class MixConfig:
    prior_weight: float = 0.25  # share of the count-based prior in the word probability (0: neural alone)
    cache: CacheWeights = field(default_factory=CacheWeights)  # the user's own word statistics' share
    extra_prior_words: int = 6  # the prior's likeliest words ranked beside the scored ones
    text_words: float = 0.04  # share of how often the word came in the text typed lately (`RECENT_CHARS`) ...
    text_pairs: float = 0.03  # ... and of how often it came there after the last word (tuned on dev users 21-28)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # how the weights follow the user

    def start_weights(self) -> dict[str, float]:
        """The sources' weights before the user has typed: the model and the prior share what the text leaves."""
        text = self.text_words + self.text_pairs
        c = self.cache
        return {"model": (1 - self.prior_weight) * (1 - text), "prior": self.prior_weight * (1 - text),
                "text_words": self.text_words, "text_pairs": self.text_pairs, "user_unigram": c.unigram,
                "user_recent": c.recent, "user_bigram": c.bigram, "user_trigram": c.trigram}


USER_SOURCES = ("user_unigram", "user_recent", "user_bigram", "user_trigram")  # in `UserVocabulary.parts` order


class Combiner:
    """value(word) = Σ weight(source) · P_source(word) over the sources that apply at the position (the weights
    normalised over them); the user's statistics scaled by `word_stats_share`, and the value of a word the user never
    typed times `new_word_factor`: the session sets both once the personal model has learned the user's words, which
    it then favours itself. After each committed word the weights learn which sources predicted it (`observe`)."""

    def __init__(self, config: MixConfig, prior: PriorSource | None, user: UserSource):
        self.config, self.prior, self.user = config, prior, user
        self.weights = MixtureWeights(config.start_weights(), config.adapt)
        self.word_stats_share = 1.0
        self.new_word_factor = 1.0
        self._position: str | None = None  # the text before the word being typed, as last asked
        self._opinions: dict[str, dict[str, float]] = {}  # word -> each source's probability, at that position
        self._query: Query | None = None  # the keystroke whose sources' probabilities `_known` holds
        self._known: dict[str, dict[str, float]] = {}
        self._applying: tuple[str, ...] = ()  # the sources but the model that apply at that keystroke
        self.refresh()

    def refresh(self) -> None:
        """Hand the user source its weights as the config and the share now say; a config whose weights changed
        (tuning) starts the adaptive weights afresh from them."""
        self.user.weights = self.config.cache.scaled(self.word_stats_share)
        start = self.config.start_weights()
        if start != self.weights.start:
            self.weights = MixtureWeights(start, self.config.adapt)

    @property
    def uses_prior(self) -> bool:
        return self.prior is not None and self.config.prior_weight > 0

    def values(self, mass: dict[str, float], query: Query, followers: Iterable[str] = (),
               remember: bool = False) -> dict[str, float]:
        """Each word's value (lower case): over the words of `mass` (the model's probability), the user's followers
        and the prior's likeliest. With `remember`, what each source gave each word is kept for
        `observe`. (`WordSearch.run` refreshes the user's weights once per keystroke.)"""
        keys = set(mass).union(followers)
        if self.uses_prior:
            keys.update(self.prior.propose(query, self.config.extra_prior_words))
        others = self._others(query, keys)
        weights = self.weights.weights({"model", *self._applying})
        model = weights["model"]
        values = {k: model * mass.get(k, 0.0) + sum(weights[s] * p for s, p in others[k].items()) for k in keys}
        if self.new_word_factor != 1.0:  # the same factor in every ranking of the keystroke: the search's bound holds
            typed = self.user.words
            values = {k: v if k in typed else v * self.new_word_factor for k, v in values.items()}
        if remember:  # only words the model scored: one it left out would seem the other sources' alone
            for k in keys:
                if mass.get(k, 0.0) > 0:
                    self._opinions[k] = {"model": mass[k], **others[k]}
        return values

    def _others(self, query: Query, keys: set[str]) -> dict[str, dict[str, float]]:
        """Word -> the probability each applying source but the model gives it (sources with no weight left out),
        kept for the keystroke's query: its three rankings (the bound's two, then the strip's) ask for the same
        words."""
        if query is not self._query:
            self._query, self._known = query, {}
        todo = keys.difference(self._known)
        if not todo and self._known:
            return self._known
        start, out = self.weights.start, {}
        if self.uses_prior:
            out["prior"] = self.prior.score(query, todo)
        for name, p in zip(("text_words", "text_pairs"), self.user.text_probabilities(query, todo)):
            if p is not None and start[name]:
                out[name] = p
        words = self.user.words
        if words.total and any(start[name] for name in USER_SOURCES):
            general = self.prior.unigram if self.prior is not None else (lambda word: 0.0)
            share, history = self.word_stats_share, query.history
            parts = {k: words.parts(history, k, self.config.cache.rare_below, general) for k in todo}
            bigram, trigram = words.contexts_seen(history)
            for i, (name, applies) in enumerate(zip(USER_SOURCES, (True, True, bigram, trigram))):
                if applies and start[name]:
                    out[name] = {k: share * v[i] for k, v in parts.items()}
        self._applying = tuple(out)
        for k in todo:
            self._known[k] = {name: p[k] for name, p in out.items()}
        return self._known

    def observe(self, state: TypingState, learn: bool = True) -> None:
        """Called with every keystroke's state: when the text before the word being typed has grown by one whole
        word since the last keystroke, the weights learn (if `learn`) from what the sources gave that word at its
        position."""
        position = state.context + state.anchor
        if position == self._position:
            return
        last, self._position = self._position, position
        if last is not None and position.startswith(last):
            typed = words_of(position[len(last):])
            if learn and len(typed) == 1 and typed[0].lower() in self._opinions:
                self.weights.learn(self._opinions[typed[0].lower()])
        self._opinions = {}
