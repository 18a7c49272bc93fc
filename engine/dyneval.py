"""Dynamic evaluation's update rule (Krause et al. 2018, section 5) as a torch optimizer: plain SGD on each gradient
divided by its RMS on general text, plus a decay toward the base weights scaled by that RMS.

Each trained tensor brings its base value and its gradient mean square, factored by rows and columns (Adafactor); a
gradient kept factored (engine/factored.py) is expanded one block of rows at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.factored import FactoredGradient

ROWS_PER_CHUNK = 256  # the RMS of a matrix is rebuilt this many rows at a time, never whole


@dataclass(frozen=True)
class TensorReference:
    """What the rule needs of one trained tensor: its base value and mean square gradient (`rows` x `cols` / mean of
    `rows` for a matrix; `cols` None and `rows` the whole statistic for a vector)."""

    base: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor | None = None

    def rms(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The RMS gradient of rows `start` .. `stop` of the tensor."""
        rows = self.rows[start:stop]
        if self.cols is None:
            return rows.sqrt()
        return torch.outer(rows, self.cols).div_(self.rows.mean()).sqrt_()

    def chunks(self) -> list[tuple[int, int]]:
        n = self.rows.shape[0]
        if self.cols is None:
            return [(0, n)]
        return [(start, min(n, start + ROWS_PER_CHUNK)) for start in range(0, n, ROWS_PER_CHUNK)]

    def rms_sum(self) -> float:
        return sum(self.rms(a, b).sum().item() for a, b in self.chunks())

    def state_bytes(self) -> int:
        """Bytes the rule holds for this tensor beyond its base value: the factored statistic."""
        return sum(t.numel() * t.element_size() for t in (self.rows, self.cols) if t is not None)


class DynamicEvalSGD(torch.optim.Optimizer):
    """θ ← θ − lr · g / (RMS + ε), then θ ← θ + (1 − (1 − λ)^(RMS / mean RMS)) · (θ_base − θ); no momentum.

    The decay is Krause's λ · RMS / mean RMS to first order, and stays within [0, 1]: λ = 1 puts every tensor back
    on its base value exactly. ε is `eps_share` of the mean RMS over the trained tensors.
    """

    def __init__(self, params: list[torch.Tensor], references: list[TensorReference], lr: float, decay: float,
                 eps_share: float = 0.1, factored: dict[int, FactoredGradient] | None = None,
                 scales: list[float] | None = None):
        if len(params) != len(references):
            raise ValueError("dynamic evaluation needs one reference per trained tensor")
        for p, ref in zip(params, references):
            if ref.base.shape != p.shape:
                raise ValueError(f"base value of shape {tuple(ref.base.shape)} for a tensor of {tuple(p.shape)}")
        super().__init__(params, {"lr": lr, "decay": decay})
        self.references = {id(p): ref for p, ref in zip(params, references)}
        self.factored = factored or {}  # by id(p): a gradient kept factored, expanded block by block here
        self.scales = {id(p): s for p, s in zip(params, scales or [1.0] * len(params))}  # multiples of lr
        count = sum(p.numel() for p in params)
        self.mean_rms = sum(ref.rms_sum() for ref in references) / max(count, 1)
        self.eps = eps_share * self.mean_rms

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, decay = group["lr"], group["decay"]
            for p in group["params"]:
                ref, factored, step = self.references[id(p)], self.factored.get(id(p)), lr * self.scales[id(p)]
                for start, stop in ref.chunks():
                    rows = p[start:stop]
                    rms = ref.rms(start, stop)
                    grad = factored.block(start, stop) if factored else p.grad
                    if grad is not None:
                        rows.addcdiv_(grad if factored else grad[start:stop], rms + self.eps, value=-step)
                    if decay > 0:
                        pull = torch.pow(1 - decay, rms.div_(self.mean_rms).clamp_(min=1e-6)).neg_().add_(1)
                        rows.lerp_(ref.base[start:stop], pull)  # exact at a pull of 1

    def state_bytes(self) -> int:
        return sum(ref.state_bytes() for ref in self.references.values())


@dataclass(frozen=True)
class ModelReference:
    """The base model's tensors and their factored gradient mean squares ((rows, cols) or (vector, None)), by
    parameter name: what a plan slices into one `TensorReference` per trained tensor."""

    base: dict[str, torch.Tensor]
    factors: dict[str, tuple[torch.Tensor, torch.Tensor | None]]

    @classmethod
    def of(cls, model: torch.nn.Module, factors: dict[str, tuple[torch.Tensor, torch.Tensor | None]]
           ) -> "ModelReference":
        """`model`'s weights as they are now (copied) as the base."""
        return cls({name: p.detach().clone() for name, p in model.named_parameters()}, factors)

    def tensor(self, name: str, channels: torch.Tensor | None = None) -> TensorReference:
        """Parameter `name`, or (given `channels`) the columns of its input channels."""
        if name not in self.base or name not in self.factors:
            raise ValueError(f"no base value or gradient statistics for {name}")
        rows, cols = self.factors[name]
        if channels is None:
            return TensorReference(self.base[name], rows, cols)
        if cols is None:
            raise ValueError(f"{name} has no input channels to select")
        return TensorReference(self.base[name].index_select(1, channels), rows, cols.index_select(0, channels))
