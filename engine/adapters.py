"""Trainable parts attached to a frozen `nn.Linear`: a slice of its input channels, or a LoRA adapter.

Each keeps the Linear's own weight equal to the trained result, so plain inference on the module sees it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def bias_grad(grad: torch.Tensor, needed: bool) -> torch.Tensor | None:
    """The gradient of a Linear's bias from the gradient of its output, if `needed`."""
    return _rows(grad).sum(0) if needed else None


class _PartialChannelLinear(torch.autograd.Function):
    """y = x W^T + b where W[:, channels] is `columns`; backward keeps only the contiguous input slice x[..., channels]."""

    @staticmethod
    def forward(ctx, x, weight, bias, columns, channels):
        ctx.save_for_backward(x.index_select(-1, channels) if ctx.needs_input_grad[3] else None,
                              weight if ctx.needs_input_grad[0] else None)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x_slice, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_columns = _rows(grad).t() @ _rows(x_slice) if ctx.needs_input_grad[3] else None
        return grad_x, None, bias_grad(grad, ctx.needs_input_grad[2]), grad_columns, None


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b where W = W0 + scale * B A is already merged; backward computes dA and dB from x and x A^T."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scale):
        down = F.linear(x, lora_a)
        ctx.scale = scale
        ctx.save_for_backward(x, down, lora_a, lora_b, weight if ctx.needs_input_grad[0] else None)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, down, lora_a, lora_b, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_rows = _rows(grad)
        grad_a = ctx.scale * (grad_rows @ lora_b).t() @ _rows(x) if ctx.needs_input_grad[3] else None
        grad_b = ctx.scale * grad_rows.t() @ _rows(down) if ctx.needs_input_grad[4] else None
        return grad_x, None, bias_grad(grad, ctx.needs_input_grad[2]), grad_a, grad_b, None


class LinearAdapter:
    """Base for adapters: installs itself as the Linear's forward and removes itself on `detach`."""

    def __init__(self, linear: nn.Linear):
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"channel fractions and LoRA apply to nn.Linear only, not {type(linear).__name__}")
        self.linear = linear
        linear.forward = self.forward

    def detach(self) -> None:
        del self.linear.forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def trainable(self) -> dict[str, nn.Parameter]:
        """The adapter's trained tensors by suffix (appended to the Linear's path)."""
        raise NotImplementedError

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Frozen tensors the adapter holds besides the Linear's own (they count as parameter memory)."""
        return {}

    def layout(self) -> dict[str, torch.Tensor]:
        """Tensors that say where the trained ones go in the weight; a delta carries them."""
        return {}

    @torch.no_grad()
    def write_back(self) -> None:
        """Make the Linear's weight equal to the trained result."""
        raise NotImplementedError


class PartialChannels(LinearAdapter):
    """The `fraction` of input channels with the largest weight norm train; the rest of the weight stays frozen."""

    def __init__(self, linear: nn.Linear, fraction: float):
        super().__init__(linear)
        weight = linear.weight.detach()
        count = max(1, round(fraction * weight.shape[1]))
        self.channels = weight.norm(dim=0).topk(count).indices.sort().values
        self.columns = nn.Parameter(weight.index_select(1, self.channels).clone())

    def forward(self, x):
        return _PartialChannelLinear.apply(x, self.linear.weight, self.linear.bias, self.columns, self.channels)

    def trainable(self):
        return {"weight.columns": self.columns}

    def extra_tensors(self):
        return self.layout()

    def layout(self):
        return {"weight.channels": self.channels}

    @torch.no_grad()
    def write_back(self):
        self.linear.weight.index_copy_(1, self.channels, self.columns)


class Lora(LinearAdapter):
    """W = W0 + 2 B A (LoRA alpha = 2 * rank), A (rank, in) random and B (out, rank) zero at first; W0 kept as a copy."""

    def __init__(self, linear: nn.Linear, rank: int, seed: int = 0):
        super().__init__(linear)
        out_features, in_features = linear.weight.shape
        self.scale = 2.0
        self.base = linear.weight.detach().clone()
        generator = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default init, as LoRA implementations use for A
        self.lora_a = nn.Parameter((torch.rand(rank, in_features, generator=generator) * 2 - 1) * bound)
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))

    def forward(self, x):
        return _LoraLinear.apply(x, self.linear.weight, self.linear.bias, self.lora_a, self.lora_b, self.scale)

    def trainable(self):
        return {"lora_a": self.lora_a, "lora_b": self.lora_b}

    def extra_tensors(self):
        return {"lora_base": self.base}

    @torch.no_grad()
    def write_back(self):
        torch.addmm(self.base, self.lora_b, self.lora_a, alpha=self.scale, out=self.linear.weight)
