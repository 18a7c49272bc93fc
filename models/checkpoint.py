"""Saving and loading model checkpoints: weights as safetensors, configuration and provenance as JSON.

The tied output projection is stored once; `load_model` never unpickles anything.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from models.gpt import GPT, GPTConfig
from models.safe_io import load_tensors, read_json, save_tensors, write_json
from models.tokenizer import Tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TIED = "lm_head.weight"


def model_tensors(model: GPT) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k != TIED}


def save_model(model: GPT, folder: str | Path, tokenizer: Tokenizer, extra: dict | None = None) -> None:
    folder = Path(folder)
    save_tensors(folder / WEIGHTS_FILE, model_tensors(model))
    write_json(folder / CONFIG_FILE, {"model": model.config.to_dict(), "tokenizer_sha256": tokenizer.sha256,
                                      "parameters": model.num_params(), **(extra or {})})


def load_model(folder: str | Path) -> GPT:
    folder = Path(folder)
    config = GPTConfig.from_dict(read_json(folder / CONFIG_FILE)["model"])
    model = GPT(config)
    tensors = load_tensors(folder / WEIGHTS_FILE)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or set(missing) - {TIED}:
        raise ValueError(f"checkpoint in {folder} does not match the model: "
                         f"missing {sorted(set(missing) - {TIED})}, unexpected {sorted(unexpected)}")
    return model.eval()


def weights_sha256(folder: str | Path) -> str:
    return hashlib.sha256((Path(folder) / WEIGHTS_FILE).read_bytes()).hexdigest()
