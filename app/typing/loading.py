"""Loading the shipped base model, tokenizer and count prior into a ready Predictor.

One place that knows where the assets live, so the CLI, the benchmarks and the app load alike.
"""
from __future__ import annotations

from pathlib import Path

import platformdirs
import torch

from app.typing.predictor import Predictor
from app.typing.predictor_config import PredictorConfig
from engine.memory import map_large_blocks
from models import BASE_DIR, PRIOR_PATH, TOKENIZER_PATH
from models.checkpoint import load_model
from models.tokenizer import Tokenizer
from models.word_prior import WordPrior


def load_predictor(model_dir: str | Path = BASE_DIR, tokenizer_path: str | Path = TOKENIZER_PATH,
                   config: PredictorConfig | None = None, prior_path: str | Path = PRIOR_PATH,
                   cache_dir: str | Path | None = None) -> Predictor:
    """The model, tokenizer and count-based prior as shipped, ready to suggest. The prior's arrays are decoded once
    into `cache_dir` (default: the platformdirs user cache folder) and memory-mapped from there.

    Suggestions are a few small matrix products: one thread is fastest, and leaves the other
    core to training.
    """
    torch.set_num_threads(1)
    map_large_blocks()  # from the start: the prior's decoding temporaries go back to the system when freed
    prior = WordPrior.load(prior_path, cache_dir or platformdirs.user_cache_dir("pocketkb", appauthor=False))
    return Predictor(load_model(model_dir), Tokenizer(Path(tokenizer_path)), config, prior)
