"""The optimizer a plan uses, as data: AdamW or SGD with momentum, holding state for trained tensors only.

The same configuration builds the optimizer of the plain PyTorch references the benchmark compares against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch


def preload() -> None:
    """Build a throwaway optimizer: the first one imports torch's compiler stack (about a second), which would
    otherwise land in the first training step after start."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


@dataclass(frozen=True)
class OptimizerConfig:
    kind: str = "adamw"          # "adamw" or "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9        # SGD only
    beta1: float = 0.9           # AdamW's first-moment decay; 0 makes each step follow its own gradient alone

    def __post_init__(self) -> None:
        if self.kind not in ("adamw", "sgd"):
            raise ValueError(f"optimizer kind must be 'adamw' or 'sgd', not {self.kind!r}")

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        params = list(params)
        if self.kind == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, betas=(self.beta1, 0.999), weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    @property
    def state_per_parameter(self) -> int:
        """How many tensors of a parameter's size the optimizer keeps for it (AdamW: two moments)."""
        if self.kind == "adamw":
            return 2
        return 1 if self.momentum else 0
