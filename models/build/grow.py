"""Growing a trained GPT deeper without changing what it computes, so a larger model starts where a smaller one ended
(Net2Net, Chen et al. 2016; depth stacking, Gong et al. 2019): each new block copies the one below, outputs zeroed.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from models.gpt import GPT


def block_sources(old: int, new: int) -> list[int]:
    """For each of `new` blocks, the old block it copies, spread evenly (4 -> 6: 0, 0, 1, 2, 2, 3)."""
    if new < old:
        raise ValueError(f"a model grows, it does not shrink: {old} blocks -> {new}")
    return [i * old // new for i in range(new)]


@torch.no_grad()
def grow_depth(model: GPT, n_layer: int) -> GPT:
    """A GPT with `n_layer` blocks computing exactly what `model` computes: the first copy of each old block keeps its
    weights; a repeated copy gets its attention and MLP output projections zeroed, so at first it passes the residual
    stream through unchanged, and its other weights (copied, not random) give training a useful start."""
    sources = block_sources(model.config.n_layer, n_layer)
    grown = GPT(replace(model.config, n_layer=n_layer))
    for name in ("wte", "wpe", "ln_f"):
        getattr(grown, name).load_state_dict(getattr(model, name).state_dict())
    for i, j in enumerate(sources):
        block = grown.blocks[i]
        block.load_state_dict(model.blocks[j].state_dict())
        if i > 0 and sources[i - 1] == j:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.zero_()
    return grown.eval()
