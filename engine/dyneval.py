"""Dynamic evaluation's update rule (Krause et al. 2018, section 5) as an optimizer: plain SGD on each gradient
divided by its RMS on general text, plus a decay toward the base weights scaled by that RMS.

A matrix's RMS is factored (Adafactor): a row factor times a column factor, each floored by ε. So a step scales the
gradient's rows and columns and never builds the RMS matrix; a gradient kept factored (engine/factored.py) is scaled in
its thin parts and added to the weight as their product.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.factored import FactoredGradient

ROWS_PER_CHUNK = 256  # the decay's RMS is rebuilt this many rows at a time, never whole


@dataclass(frozen=True)
class TensorReference:
    """What the rule needs of one trained tensor: its base value and mean square gradient (`rows` x `cols` / mean of
    `rows` for a matrix; `cols` None and `rows` the whole statistic for a vector)."""

    base: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor | None = None

    def factors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """RMS = row factor (outer) column factor for a matrix; the RMS itself and None for a vector."""
        if self.cols is None:
            return self.rows.sqrt(), None
        return (self.rows / self.rows.mean()).sqrt(), self.cols.sqrt()

    def rms(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The RMS gradient of rows `start` .. `stop` of the tensor."""
        row, col = self.factors()
        return row[start:stop] if col is None else torch.outer(row[start:stop], col)

    def chunks(self) -> list[tuple[int, int]]:
        n = self.rows.shape[0]
        if self.cols is None:
            return [(0, n)]
        return [(start, min(n, start + ROWS_PER_CHUNK)) for start in range(0, n, ROWS_PER_CHUNK)]

    def rms_sum(self) -> float:
        row, col = self.factors()
        return row.sum().item() * (1.0 if col is None else col.sum().item())

    def state_bytes(self) -> int:
        """Bytes the rule holds for this tensor beyond its base value: the factored statistic (and its scales)."""
        return 2 * sum(t.numel() * t.element_size() for t in (self.rows, self.cols) if t is not None)


class DynamicEvalSGD:
    """θ ← θ − lr · g / RMS_ε, then θ ← θ + (1 − (1 − λ)^(RMS / mean RMS)) · (θ_base − θ); no momentum.

    RMS_ε is RMS + ε for a vector and (row factor + ε_row)(column factor + ε_column) for a matrix, ε being
    `eps_share` of the mean RMS (of each factor's mean for a matrix). The decay is Krause's λ · RMS / mean RMS to
    first order, and stays within [0, 1]: λ = 1 puts every tensor back on its base value exactly.

    Duck-typed like a torch optimizer (`param_groups`, `state`, `step`, `zero_grad`) but not one: constructing a
    `torch.optim.Optimizer` imports torch's compiler stack, which adds about 80 MiB to the keyboard's memory.
    """

    def __init__(self, params: list[torch.Tensor], references: list[TensorReference], lr: float, decay: float,
                 eps_share: float = 0.1, factored: dict[int, FactoredGradient] | None = None,
                 scales: list[float] | None = None):
        if len(params) != len(references):
            raise ValueError("dynamic evaluation needs one reference per trained tensor")
        for p, ref in zip(params, references):
            if ref.base.shape != p.shape:
                raise ValueError(f"base value of shape {tuple(ref.base.shape)} for a tensor of {tuple(p.shape)}")
        self.param_groups = [{"params": list(params), "lr": lr, "decay": decay}]
        self.state: dict = {}  # no per-parameter state: the statistics are the references'
        self.references = {id(p): ref for p, ref in zip(params, references)}
        self.factored = factored or {}  # by id(p): a gradient kept factored, scaled in its parts here
        self.scales = {id(p): s for p, s in zip(params, scales or [1.0] * len(params))}  # multiples of lr
        count = sum(p.numel() for p in params)
        self.mean_rms = sum(ref.rms_sum() for ref in references) / max(count, 1)
        self.eps = eps_share * self.mean_rms
        self.inverse = {id(p): self._inverse(ref, eps_share) for p, ref in zip(params, references)}

    def _inverse(self, ref: TensorReference, eps_share: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """1 / RMS_ε as (per row, per column), or (per element, None) for a vector."""
        row, col = ref.factors()
        if col is None:
            return 1.0 / (row + self.eps), None
        return 1.0 / (row + eps_share * row.mean()), 1.0 / (col + eps_share * col.mean())

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, decay = group["lr"], group["decay"]
            for p in group["params"]:
                step = lr * self.scales[id(p)]
                factored = self.factored.get(id(p))
                if factored:
                    self._step_factored(p, factored, step)
                elif p.grad is not None:
                    self._step_dense(p, p.grad, step)
                if decay > 0:
                    self._decay(p, decay)

    def _step_dense(self, p: torch.Tensor, grad: torch.Tensor, step: float) -> None:
        row, col = self.inverse[id(p)]
        if col is None:
            p.addcmul_(grad, row, value=-step)
        else:
            p.addcmul_(grad * row.unsqueeze(1), col, value=-step)

    def _step_factored(self, p: torch.Tensor, grad: FactoredGradient, step: float) -> None:
        """Rows and columns scaled in the thin parts: the looked-up rows, each product's two factors."""
        row, col = self.inverse[id(p)]
        if grad.summed is not None:
            self._step_dense(p, grad.summed, step)
        for left, right in grad.products:
            p.addmm_((left * row).t(), right * col, alpha=-step)
        for ids, grads in grad.rows:
            p.index_add_(0, ids, grads * row[ids].unsqueeze(1) * col, alpha=-step)

    def _decay(self, p: torch.Tensor, decay: float) -> None:
        ref = self.references[id(p)]
        for start, stop in ref.chunks():
            rms = ref.rms(start, stop)
            pull = torch.pow(1 - decay, rms.div_(self.mean_rms).clamp_(min=1e-6)).neg_().add_(1)
            p[start:stop].lerp_(ref.base[start:stop], pull)  # exact at a pull of 1

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
