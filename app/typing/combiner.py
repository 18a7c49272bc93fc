"""Mixing the sources' opinions into one value per word (Presage's Combiner): the model's probability interpolated
with the count prior's, plus what the user's own statistics add; the weights in one config.
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


class Combiner:
    """value(word) = (1 - prior_weight) · P_model + prior_weight · P_prior + the user's boost (scaled by
    `word_stats_share`, which the session lowers once the personal model has learned the user's words)."""

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
        general = self.prior.unigram if self.prior is not None else (lambda word: 0.0)
        boost = self.user.score(query, scores, general)
        return {k: v + boost[k] for k, v in scores.items()}
