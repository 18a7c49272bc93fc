"""Loading the shipped base model, tokenizer and count prior into a ready Predictor.

One place that knows where the assets live, so the CLI, the benchmarks and the app load alike.
"""
from __future__ import annotations

from pathlib import Path

import torch

from app.typing.predictor import Predictor, PredictorConfig
from models import BASE_DIR, PRIOR_PATH, TOKENIZER_PATH
from models.checkpoint import load_model
from models.tokenizer import Tokenizer
from models.word_prior import WordPrior


def load_predictor(model_dir: str | Path = BASE_DIR, tokenizer_path: str | Path = TOKENIZER_PATH,
                   config: PredictorConfig | None = None, prior_path: str | Path = PRIOR_PATH) -> Predictor:
    """The model, tokenizer and count-based prior as shipped, ready to suggest.

    Suggestions are a few small matrix products: one thread is fastest, and leaves the other
    core to training.
    """
    torch.set_num_threads(1)
    prior = WordPrior.load(prior_path)
    return Predictor(load_model(model_dir), Tokenizer(Path(tokenizer_path)), config, prior)
