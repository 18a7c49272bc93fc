"""Frozen Linear weights held as int8 (weight-only, one scale per output channel) to cut model memory.

Trained tensors stay fp32, so no int8 tensor is ever updated and quantization-aware gradient scaling is not needed.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.adapters import bias_grad


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 values and one fp32 scale per output channel (row)."""
    scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale


def _dequantize(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return values.to(scale.dtype) * scale


class _Int8Linear(torch.autograd.Function):
    """y = x W^T + b with W dequantized on the fly; backward dequantizes again instead of keeping an fp32 copy."""

    @staticmethod
    def forward(ctx, x, values, scale, bias):
        ctx.save_for_backward(values, scale)
        return F.linear(x, _dequantize(values, scale), bias)

    @staticmethod
    def backward(ctx, grad):
        values, scale = ctx.saved_tensors
        grad_x = grad @ _dequantize(values, scale) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, bias_grad(grad, ctx.needs_input_grad[3])


@torch.no_grad()
def round_frozen_linears_to_int8(module: nn.Module) -> int:
    """Give every untied Linear the weight it computes with when held as int8 (what `frozen_int8` does to a
    plan's frozen Linears), to measure the effect on predictions. Returns how many Linears were rounded."""
    from engine.resolve import shared_parameters

    shared = shared_parameters(module)
    rounded = 0
    for m in module.modules():
        if isinstance(m, nn.Linear) and id(m.weight) not in shared:
            m.weight.copy_(_dequantize(*quantize_per_channel(m.weight)))
            rounded += 1
    return rounded


class Int8Weight:
    """Replaces a frozen Linear's fp32 weight parameter by int8 values and scales, dequantized at each call.

    While installed, the Linear has no `weight` parameter; `release` puts back an fp32 one (with int8 rounding).
    """

    def __init__(self, linear: nn.Linear, requires_grad_after: bool = False):
        self.linear = linear
        self.values, self.scale = quantize_per_channel(linear.weight.detach())
        self.requires_grad_after = requires_grad_after
        del linear.weight
        linear.forward = self.forward

    def weight(self) -> torch.Tensor:
        return _dequantize(self.values, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Int8Linear.apply(x, self.values, self.scale, self.linear.bias)

    def tensors(self) -> list[torch.Tensor]:
        return [self.values, self.scale]

    def release(self) -> None:
        del self.linear.forward
        self.linear.weight = nn.Parameter(self.weight(), requires_grad=self.requires_grad_after)
