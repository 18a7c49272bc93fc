"""The optimizer a plan uses, as data: AdamW, SGD with momentum, or dynamic evaluation's RMS-normalised SGD with a
decay toward the base weights; each holds state for trained tensors only.

The same configuration builds the optimizer of the plain PyTorch references the benchmark compares against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from engine.dyneval import DynamicEvalSGD, TensorReference
from engine.factored import FactoredGradient


def preload() -> None:
    """Build a throwaway torch optimizer: the first one imports torch's compiler stack (about a second and 80 MiB),
    which would otherwise land in the first AdamW or SGD step timed (dynamic evaluation's optimizer needs none)."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


KINDS = ("adamw", "sgd", "dyneval")


@dataclass(frozen=True)
class OptimizerConfig:
    kind: str = "adamw"          # "adamw", "sgd" or "dyneval"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9        # SGD only
    beta1: float = 0.9           # AdamW's first-moment decay; 0 makes each step follow its own gradient alone
    decay: float = 0.0           # dyneval only: λ, the pull toward the base weights per step
    eps_share: float = 0.1       # dyneval only: ε as a share of the mean RMS gradient

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"optimizer kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], not {self.decay}")

    def build(self, params: Iterable[torch.Tensor], references: list[TensorReference] | None = None,
              factored: dict[int, FactoredGradient] | None = None, scales: list[float] | None = None
              ) -> torch.optim.Optimizer | DynamicEvalSGD:
        """`references` (dyneval only): each tensor's base value and gradient statistics, in the order of `params`;
        `factored` (dyneval only): gradients kept factored, by the id of their tensor; `scales`: each tensor's
        multiple of the learning rate (default 1)."""
        params = list(params)
        scales = scales or [1.0] * len(params)
        if self.kind == "dyneval":
            if references is None:
                raise ValueError("dynamic evaluation needs the base weights and their gradient statistics")
            return DynamicEvalSGD(params, references, self.lr, self.decay, self.eps_share, factored, scales)
        groups = [{"params": [p for p, s in zip(params, scales) if s == scale], "lr": self.lr * scale}
                  for scale in dict.fromkeys(scales)]
        if self.kind == "adamw":
            return torch.optim.AdamW(groups, lr=self.lr, betas=(self.beta1, 0.999), weight_decay=self.weight_decay)
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    @property
    def takes_factored(self) -> bool:
        """Whether the optimizer applies a factored gradient block by block (else it gets the dense gradient)."""
        return self.kind == "dyneval"

    @property
    def state_per_parameter(self) -> int:
        """How many tensors of a parameter's size the optimizer keeps for it (AdamW: two moments; dyneval: none,
        its factored statistics are counted apart)."""
        if self.kind == "dyneval":
            return 0
        if self.kind == "adamw":
            return 2
        return 1 if self.momentum else 0
