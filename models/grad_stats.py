"""Mean squared gradients of the base model's parameters on pretraining text, which dynamic evaluation divides by.

Stored factored as Adafactor does (a row and a column mean per matrix), tied to the base weights by their hash.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable

import torch
from safetensors import SafetensorError

from models.gpt import GPT
from models.safe_io import load_tensors_with_metadata, save_tensors
from models.tokenizer import BOS_ID, Tokenizer

GRAD_STATS_FILE = "grad_stats.safetensors"
POOL_DOCUMENTS = 2000  # windows are cut from the first this many documents long enough for one
ROWS, COLS = ".rows", ".cols"


class GradStatsError(ValueError):
    pass


@dataclass(frozen=True)
class GradStats:
    """Factored mean squared gradients: `name.rows` and `name.cols` for a matrix, `name` for a vector."""

    tensors: dict[str, torch.Tensor]
    info: dict

    def names(self) -> list[str]:
        return list(dict.fromkeys(k.removesuffix(ROWS).removesuffix(COLS) for k in self.tensors))

    def factors(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if name in self.tensors:
            return self.tensors[name], None
        return self.tensors[name + ROWS], self.tensors[name + COLS]

    def all_factors(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        return {name: self.factors(name) for name in self.names()}

    def mean_square(self, name: str) -> torch.Tensor:
        """The full-shape estimate: the vector itself, or outer(rows, cols) / their mean for a matrix."""
        rows, cols = self.factors(name)
        return rows if cols is None else torch.outer(rows, cols) / rows.mean()


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


def load_grad_stats(path: str | Path, base_sha256: str) -> GradStats:
    what, rebuild = f"gradient statistics file {path}", "run `pocketkb grad-stats` to rebuild it"
    try:
        tensors, metadata = load_tensors_with_metadata(path)
        info = json.loads(metadata.get("info", "{}"))
    except FileNotFoundError:
        raise GradStatsError(f"{what} is missing: {rebuild}") from None
    except (OSError, SafetensorError, ValueError) as err:
        raise GradStatsError(f"{what} is damaged or unreadable ({err}): {rebuild}") from None
    if metadata.get("base_sha256") != base_sha256:
        raise GradStatsError(f"{what} does not match the base model: {rebuild}")
    return GradStats(tensors, info)
