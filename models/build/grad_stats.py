"""Computing the base model's mean squared gradients on pretraining text (`pocketkb grad-stats`), factored as
Adafactor does, and saving them tied to the base weights' hash for `models.grad_stats` to read.
"""
from __future__ import annotations

import json
import random
from itertools import islice
from pathlib import Path
from typing import Iterable

import torch

from models.gpt import GPT
from models.grad_stats import COLS, ROWS
from models.safe_io import save_tensors
from models.tokenizer import BOS_ID, Tokenizer

POOL_DOCUMENTS = 2000  # windows are cut from the first this many documents long enough for one


def factor_mean_squares(mean_squares: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each matrix (out x in) as its mean over columns (`.rows`, [out]) and over rows (`.cols`, [in])."""
    out = {}
    for name, ms in mean_squares.items():
        if ms.dim() == 2:
            out[name + ROWS], out[name + COLS] = ms.mean(dim=1), ms.mean(dim=0)
        else:
            out[name] = ms
    return out


def compute_grad_stats(model: GPT, tokenizer: Tokenizer, documents: Iterable[str], batches: int = 24,
                       rows: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    """Factored mean squared gradients of next-token loss over `batches` batches of `rows` random windows.

    Each window is block_size + 1 tokens at a random offset of a random document (BOS first, as in pretraining).
    """
    window = model.config.block_size + 1
    encoded = ([BOS_ID, *tokenizer.encode(doc)] for doc in documents)
    pool = list(islice((ids for ids in encoded if len(ids) >= window), POOL_DOCUMENTS))
    if not pool:
        raise ValueError(f"no document is long enough for a window of {window} tokens")
    rnd = random.Random(seed)
    params = dict(model.named_parameters())
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    with torch.enable_grad():
        for _ in range(batches):
            picked = [rnd.choice(pool) for _ in range(rows)]
            starts = [rnd.randrange(len(ids) - window + 1) for ids in picked]
            x = torch.tensor([ids[s:s + window] for ids, s in zip(picked, starts)])
            grads = torch.autograd.grad(model.loss(x[:, :-1], x[:, 1:]), list(params.values()))
            for total, grad in zip(sums.values(), grads):
                total += grad.square()
    return factor_mean_squares({name: total / batches for name, total in sums.items()})


def save_grad_stats(path: str | Path, stats: dict[str, torch.Tensor], base_sha256: str, info: dict) -> None:
    save_tensors(path, stats, {"base_sha256": base_sha256, "info": json.dumps(info)})
