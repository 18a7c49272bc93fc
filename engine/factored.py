"""Gradients of an embedding matrix kept as what they are made of, and expanded a block of rows at a time.

A lookup's gradient is a few rows (the tokens looked up); a tied output projection's is a product of two thin
matrices (positions x rows by positions x columns). Neither is ever held as a dense matrix of the embedding's size.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class FactoredGradient:
    """The gradient of one matrix, as looked-up rows (ids, gradients) and products (left^T @ right) added up.

    Parts that would outgrow the dense matrix (many positions at once) are summed into it instead."""

    def __init__(self, shape: torch.Size):
        self.shape = shape
        self.allowed: torch.Tensor | None = None  # bool per row: the rows a step may change (None: all)
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.products: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.summed: torch.Tensor | None = None

    def limit(self, allowed: torch.Tensor) -> None:
        """From now on only the rows where `allowed` (bool per row, read at each step: the caller may grow it in
        place) is true get a gradient, on the looked-up side and the projection's alike."""
        if allowed.shape != (self.shape[0],) or allowed.dtype != torch.bool:
            raise ValueError(f"a row limit must be {self.shape[0]} booleans, not {tuple(allowed.shape)} {allowed.dtype}")
        self.allowed = allowed

    def add_rows(self, ids: torch.Tensor, grads: torch.Tensor) -> None:
        ids, grads = ids.reshape(-1), grads.reshape(-1, self.shape[1])
        if self.allowed is not None:
            keep = self.allowed[ids]
            ids, grads = ids[keep], grads[keep]
        self.rows.append((ids, grads))
        self._sum_if_larger()

    def add_product(self, left: torch.Tensor, right: torch.Tensor) -> None:
        left = left.reshape(-1, self.shape[0])
        if self.allowed is not None:
            left = left * self.allowed
        self.products.append((left, right.reshape(-1, self.shape[1])))
        self._sum_if_larger()

    def _sum_if_larger(self) -> None:
        if self.summed is None and self.bytes > self.shape.numel() * 4:
            summed = self.dense()
            self.rows, self.products, self.summed = [], [], summed

    @property
    def bytes(self) -> int:
        parts = sum(t.numel() * t.element_size() for pair in (*self.rows, *self.products) for t in pair)
        return parts + (0 if self.summed is None else self.summed.numel() * self.summed.element_size())

    @property
    def step_bytes(self) -> int:
        """Its parts, plus the scaled copy of the largest one that a step makes (one part, both its tensors, at a
        time)."""
        parts = [sum(t.numel() * t.element_size() for t in pair) for pair in (*self.rows, *self.products)]
        summed = 0 if self.summed is None else self.summed.numel() * self.summed.element_size()
        return self.bytes + max([*parts, summed, 0])

    def __bool__(self) -> bool:
        return bool(self.rows or self.products) or self.summed is not None

    def block(self, start: int, stop: int) -> torch.Tensor:
        """The dense gradient of rows `start` .. `stop`."""
        out = torch.zeros(stop - start, self.shape[1]) if self.summed is None else self.summed[start:stop].clone()
        for left, right in self.products:
            out.addmm_(left[:, start:stop].t(), right)
        for ids, grads in self.rows:
            inside = (ids >= start) & (ids < stop)
            out.index_add_(0, ids[inside] - start, grads[inside])
        return out

    def dense(self) -> torch.Tensor:
        return self.block(0, self.shape[0])

    def clear(self) -> None:
        self.rows, self.products, self.summed = [], [], None


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids, weight, sink, padding_idx):
        ctx.save_for_backward(ids)
        ctx.sink, ctx.padding_idx = sink, padding_idx
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        if ctx.padding_idx is not None:  # the padding row gets no gradient, as in nn.Embedding
            grad = grad.masked_fill((ids == ctx.padding_idx).unsqueeze(-1), 0.0)
        ctx.sink.add_rows(ids, grad)
        return None, None, None, None


class _Projection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, sink):
        ctx.save_for_backward(x, weight)
        ctx.sink = sink
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        ctx.sink.add_product(grad, x)
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, None, bias, None


def factorable(module: nn.Module, weight: torch.Tensor) -> bool:
    """Whether `module` uses `weight` in a way whose gradient can be kept factored (a lookup or a projection)."""
    return getattr(module, "weight", None) is weight and type(module) in (nn.Embedding, nn.Linear)


def route_gradient(module: nn.Module, sink: FactoredGradient) -> None:
    """From now on the gradient `module` gives its weight goes to `sink`; `restore_forward` undoes it."""
    if isinstance(module, nn.Embedding):
        if module.max_norm is not None:
            raise ValueError("an embedding with max_norm changes its weight in forward: its gradient cannot be routed")
        module.forward = lambda ids: _Lookup.apply(ids, module.weight, sink, module.padding_idx)
    else:
        module.forward = lambda x: _Projection.apply(x, module.weight, module.bias, sink)


def restore_forward(module: nn.Module) -> None:
    module.__dict__.pop("forward", None)
