"""The mixture weights of the suggestion sources, adapted to the user online (dynamic interpolation).

Each source gives every candidate word a probability; a word's value is their weighted sum. After each word the user
commits, the weights take one gradient step on the log-probability the normalised mixture gave that word, as scored
before it was typed (prequential): a source that predicted it gains weight, one that did not loses some. This is the
online form of the EM re-estimation of interpolation weights (Jelinek & Mercer 1980; Kuhn & De Mori 1990 for caches).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

# The sources, in the order the weights are kept: the model, the count prior, the text typed lately (its words, and
# what came after the last word there), and the user's statistics (rare words' share, lately, after the last word,
# after the last two).
SOURCES = ("model", "prior", "text_words", "text_pairs", "user_unigram", "user_recent", "user_bigram", "user_trigram")


@dataclass
class AdaptConfig:
    rate: float = 0.1      # step size on the log-weights per committed word (0: the weights stay as configured; tuned
                           # on dev users 21-28: 0.1 and 0.3 both lift words new to the user by 0.4 KSR, 0.1 costs
                           # less on the words typed before)
    bound: float = 3.0     # each log-weight stays within this many nats of where it started, so a source that turned
                           # bad for a while still has weight to win back (and a lucky streak cannot take over)
    floor: float = 1e-9    # probabilities below this count as zero: the source did not predict the word


@dataclass
class MixtureWeights:
    """Weights over `SOURCES`, kept as log-weights; `weights` normalises them over the sources that apply."""

    start: dict[str, float]
    config: AdaptConfig = field(default_factory=AdaptConfig)
    words: int = 0  # words learned from

    def __post_init__(self) -> None:
        unknown = set(self.start) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown mixture sources: {', '.join(sorted(unknown))}")
        self.start = {name: self.start.get(name, 0.0) for name in SOURCES}
        self.log = {name: math.log(w) if w > 0 else -math.inf for name, w in self.start.items()}

    def weights(self, available: frozenset[str] | set[str] | None = None) -> dict[str, float]:
        """The weights of the `available` sources (all by default), summing to 1 over them (all 0 if none has any)."""
        names = [n for n in SOURCES if available is None or n in available]
        top = max((self.log[n] for n in names), default=-math.inf)
        if top == -math.inf:
            return {n: 0.0 for n in names}
        raw = {n: math.exp(self.log[n] - top) for n in names}
        total = sum(raw.values())
        return {n: v / total for n, v in raw.items()}

    def learn(self, probabilities: Mapping[str, float]) -> None:
        """One step after a committed word: `probabilities` holds what each source that applied at that position gave
        it (a source missing from it did not apply). The gradient of log(sum w·p / sum w) over the applying sources
        in each log-weight is (its share of the word's probability) - (its weight)."""
        if not self.config.rate:
            return
        weights = self.weights(set(probabilities))
        mixed = sum(weights[n] * p for n, p in probabilities.items() if p > self.config.floor)
        if mixed <= 0:  # no source predicted the word: nothing says which to trust more
            return
        self.words += 1
        for name, p in probabilities.items():
            if self.log[name] == -math.inf:
                continue
            share = weights[name] * p / mixed if p > self.config.floor else 0.0
            start = math.log(self.start[name])
            moved = self.log[name] + self.config.rate * (share - weights[name])
            self.log[name] = min(start + self.config.bound, max(start - self.config.bound, moved))

    def reset(self) -> None:
        self.__post_init__()
        self.words = 0

    def to_dict(self) -> dict:
        return {"log": {n: v for n, v in self.log.items() if v != -math.inf}, "words": self.words}

    def load(self, data: Mapping) -> None:
        """Log-weights saved by `to_dict` (sources it does not name keep theirs; values are kept within bounds)."""
        self.reset()
        saved = data.get("log")
        for name, value in (saved if isinstance(saved, dict) else {}).items():
            if name in self.log and self.log[name] != -math.inf and isinstance(value, (int, float)) \
                    and math.isfinite(value):
                start = math.log(self.start[name])
                self.log[name] = min(start + self.config.bound, max(start - self.config.bound, float(value)))
        words = data.get("words", 0)
        self.words = int(words) if isinstance(words, int) and words >= 0 else 0
