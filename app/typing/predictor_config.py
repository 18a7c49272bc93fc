"""What a predictor is configured with: how many suggestions, how many candidates the model scores, its window,
and how the sources mix. Its own module, so the predictor's parts (`model_source`, `search`) read it without
importing the predictor they are parts of.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.typing.combiner import MixConfig


@dataclass
class PredictorConfig:
    suggestions: int = 3
    candidates: int = 16        # vocabulary words the model scores per keystroke, picked by its first-piece estimate
    estimate_margin: float = 3.0  # nats a vocabulary word's probability may exceed that estimate (not scored beyond)
    window_margin: int = 8      # positions of the model window left free for the word being spelled
    reuse_cache: bool = True
    mix: MixConfig = field(default_factory=MixConfig)  # how the model, the prior and the user's statistics mix
