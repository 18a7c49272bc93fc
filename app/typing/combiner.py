"""Mixing the sources' opinions into one value per word (Presage's Combiner): the model's probability interpolated
with the count prior's and with the text typed lately (a cache), plus what the user's own statistics add; the
weights in one config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from app.typing.sources import PriorSource, Query, UserSource
from app.typing.user_vocab import CacheWeights


@dataclass
class MixConfig:
    prior_weight: float = 0.25  # share of the count-based prior in the word probability (0: neural alone)
    cache: CacheWeights = field(default_factory=CacheWeights)  # the user's own word statistics' share
    extra_prior_words: int = 6  # the prior's likeliest words ranked beside the scored ones
    text_words: float = 0.04  # share of how often the word came in the text typed lately (`RECENT_CHARS`) ...
    text_pairs: float = 0.03  # ... and of how often it came there after the last word (tuned on dev users 21-28)


class Combiner:
    """value(word) = (1 - text) · ((1 - prior_weight) · P_model + prior_weight · P_prior) + text_words · P_text
    + text_pairs · P_text(word | last word) + the user's boost (scaled by `word_stats_share`, which the session
    lowers once the personal model has learned the user's words). `text` is the share of the text's components
    that apply: none before the text has words, no pairs when the last word came in it last."""

    def __init__(self, config: MixConfig, prior: PriorSource | None, user: UserSource):
        self.config, self.prior, self.user = config, prior, user
        self.word_stats_share = 1.0
        self.refresh()

    def refresh(self) -> None:
        """Hand the user source its weights as the config and the share now say."""
        self.user.weights = self.config.cache.scaled(self.word_stats_share)

    @property
    def uses_prior(self) -> bool:
        return self.prior is not None and self.config.prior_weight > 0

    def values(self, mass: dict[str, float], query: Query, followers: Iterable[str] = ()) -> dict[str, float]:
        """Each word's value (lower case): over the words of `mass` (the model's probability), the user's followers
        and the prior's likeliest. (`WordSearch.run` refreshes the user's weights once per keystroke.)"""
        scores = dict(mass)
        for word in followers:
            scores.setdefault(word, 0.0)
        if self.uses_prior:
            keys = set(scores)
            keys.update(self.prior.propose(query, self.config.extra_prior_words))
            lam = self.config.prior_weight
            prior = self.prior.score(query, keys)
            scores = {k: (1 - lam) * scores.get(k, 0.0) + lam * prior[k] for k in keys}
        scores = self._with_text(scores, query)
        general = self.prior.unigram if self.prior is not None else (lambda word: 0.0)
        boost = self.user.score(query, scores, general)
        return {k: v + boost[k] for k, v in scores.items()}

    def _with_text(self, scores: dict[str, float], query: Query) -> dict[str, float]:
        """The scores mixed with the text typed lately (`UserSource.text_probabilities`)."""
        shares = zip((self.config.text_words, self.config.text_pairs), self.user.text_probabilities(query, scores))
        parts = [(weight, p) for weight, p in shares if weight and p is not None]
        if not parts:
            return scores
        rest = 1.0 - sum(weight for weight, _ in parts)
        return {k: rest * v + sum(weight * p[k] for weight, p in parts) for k, v in scores.items()}
