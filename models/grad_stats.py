"""Mean squared gradients of the base model's parameters on pretraining text, which dynamic evaluation divides by.

Stored factored as Adafactor does (a row and a column mean per matrix), tied to the base weights by their hash. `models.build.grad_stats` computes them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

from models.safe_io import load_tensors_with_metadata

GRAD_STATS_FILE = "grad_stats.safetensors"
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
