"""Loading the shipped base model and tokenizer into a ready Predictor, and reading evaluation texts.

One place that knows where the assets live, so the CLI, the benchmarks and the app load alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from app.predictor import Predictor, PredictorConfig
from models import BASE_DIR, PRIOR_PATH, TOKENIZER_PATH
from models.checkpoint import load_model
from models.corpus import is_users_file, read_documents, read_users
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


@dataclass(frozen=True)
class EvalText:
    name: str
    text: str


def _cut(text: str, chars: int) -> str:
    """The first `chars` characters, ending at a word boundary."""
    if len(text) <= chars:
        return text
    space = text.rfind(" ", 0, chars)
    return text[: space if space > 0 else chars]


def read_eval_texts(path: str | Path, chars: int, users: int | None = None) -> list[EvalText]:
    """A text file's first `chars` characters (documents one per line), or the first `users`
    users of a users file, each cut to `chars` characters of their posts in date order."""
    if is_users_file(path):
        return [EvalText(u.user, _cut("\n".join(u.posts), chars)) for u in read_users(path, limit=users)]
    parts, size = [], 0
    for doc in read_documents(path):
        parts.append(doc)
        size += len(doc) + 1
        if size >= chars:
            break
    return [EvalText(Path(path).name.split(".")[0], _cut("\n".join(parts), chars))]
