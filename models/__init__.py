"""The language model and its assets: tokenizer, architecture, shipped base checkpoint, pretraining.

Knows nothing of Qt or of the engine.
"""
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
TOKENIZER_PATH = MODELS_DIR / "tokenizer.model"
BASE_DIR = MODELS_DIR / "base"
PRIOR_PATH = MODELS_DIR / "word_prior.npz.xz"
SCHEMES_DIR = MODELS_DIR / "schemes"
GENERAL_REPLAY_PATH = MODELS_DIR / "general_replay.txt"
