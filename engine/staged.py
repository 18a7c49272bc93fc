"""How the engine sees a model: a chain of stages (stem, blocks, head), the paths of its blocks, a loss, and the
layout of its trainable tensors. The model describes itself (GPT: `models.gpt_stages`); the engine only reads it.

Any `torch.nn.Module` can be described this way; `sequential_model` does it for an `nn.Sequential`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

Batch = Any


@dataclass(frozen=True)
class Stage:
    """One step of the forward pass: `run` maps the previous stage's output to this one's.

    `modules` are the modules whose parameters the stage uses. A stage that `mixes_positions` (attention) needs
    every position of its input; one that does not (an MLP, a head) can run on the newest positions alone.
    `run_after(x, memory)`, where given, runs a mixing stage on new positions only, after earlier positions whose
    `memory` (this stage's entry of `StagedModel.remember`) stands in for them; it returns the output and what the
    new positions add to that entry (detached: a memory is never backpropagated into).
    """

    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    modules: tuple[nn.Module, ...]
    mixes_positions: bool = True
    run_after: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]] | None = None

    def parameters(self) -> set[int]:
        return {id(p) for m in self.modules for p in m.parameters()}


@dataclass(frozen=True)
class TensorLayout:
    """Which tensors an analysis may propose to train, by module path: inside each block, the matrices whose output
    channels may train (`block_tensors`); after the blocks, the modules trained with the biases (`head_modules`);
    and the modules through which the embedding matrix is used, each one candidate whole (`embedding`)."""

    block_tensors: tuple[str, ...] = ()
    head_modules: tuple[str, ...] = ()
    embedding: tuple[str, ...] = ()


def split_pairs(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = batch
    return inputs, targets


@dataclass(frozen=True)
class StagedModel:
    """A module cut into stages, with the paths of its blocks (what schemes index) and how batches become losses.

    `loss(output, targets)` is the mean loss; `split_batch` turns a batch into (inputs, targets). Stage outputs and
    targets have their positions (time steps) along `positions_dim`; None for models without positions. Every
    stage must treat each sample of a batch on its own (no batch statistics), so prefix outputs can be cached per
    sample.

    `remember(inputs, memory)`, where given, runs the model without gradient over `inputs` that follow the positions
    `memory` holds (None: none) and returns the memory of them all: one entry per stage, what its `run_after` takes.
    With it, a plan can train on the newest positions alone while earlier ones are a fixed memory (Transformer-XL).
    `grow(memory, added)` is the memory followed by the positions a step ran after it (`added`: per stage, what its
    `run_after` returned, None for stages that ran plainly), so the next step's context needs no forward pass;
    `trim(memory, n)` keeps its first `n` positions.
    """

    module: nn.Module
    stages: tuple[Stage, ...]
    block_paths: tuple[str, ...]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    split_batch: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]] = split_pairs
    positions_dim: int | None = None
    remember: Callable[[torch.Tensor, Any], tuple] | None = None
    grow: Callable[[tuple, list], tuple] | None = None
    trim: Callable[[tuple, int], tuple] | None = None
    layout: TensorLayout = TensorLayout()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            inputs = stage.run(inputs)
        return inputs


def sequential_model(module: nn.Sequential, loss: Callable = F.cross_entropy) -> StagedModel:
    """An `nn.Sequential` whose children are its stages and its blocks; batches are (inputs, targets)."""
    names = tuple(name for name, _ in module.named_children())
    stages = tuple(Stage(name, child, (child,), mixes_positions=False) for name, child in module.named_children())
    return StagedModel(module, stages, names, loss)
