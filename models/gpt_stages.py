"""How the GPT describes itself to the engine: its stages (embedding, pre-norm residual sublayers, head), batches of
token rows with the next-token loss, and the layout of its trainable tensors.

A block with `ln_1`, `attn`, `ln_2`, `mlp` becomes two stages, so a cut can fall between attention and MLP. Earlier
positions can be remembered as each attention's keys and values, so a step runs on the newest positions alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.staged import Stage, StagedModel, TensorLayout
from models.gpt import LayerCache

# The matrices of a block whose channels may train, what trains with the biases, and the embedding's two uses.
LAYOUT = TensorLayout(block_tensors=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"), head_modules=("ln_f",),
                      embedding=("wte", "lm_head"))


def next_token_pairs(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows (batch, T + 1) become inputs (batch, T) and the next tokens as targets."""
    return batch[:, :-1], batch[:, 1:]


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=-1)


def _attention_stage(path: str, block: nn.Module) -> Stage:
    def run(x: torch.Tensor) -> torch.Tensor:
        return x + block.attn(block.ln_1(x))[0]

    def run_after(x: torch.Tensor, memory: LayerCache) -> tuple[torch.Tensor, LayerCache]:
        """The new positions attend to the remembered keys and values first (never copied); their own keys and
        values, detached, are what they add to the memory."""
        out, own = block.attn(block.ln_1(x), prefix=memory)
        return x + out, (own[0].detach(), own[1].detach())
    return Stage(f"{path}.attn", run, (block.ln_1, block.attn), mixes_positions=True, run_after=run_after)


def _mlp_stage(path: str, block: nn.Module) -> Stage:
    def run(x: torch.Tensor) -> torch.Tensor:
        return x + block.mlp(block.ln_2(x))
    return Stage(f"{path}.mlp", run, (block.ln_2, block.mlp), mixes_positions=False)


def staged_lm(model: nn.Module) -> StagedModel:
    """`model.embed(idx)`, the blocks of `model.blocks`, and `model.head(x)` over `model.ln_f` and `model.lm_head`.

    Each block runs as `x + attn(ln_1(x))[0]` then `x + mlp(ln_2(x))`, as the model's own blocks do.
    """
    stages = [Stage("embed", model.embed, (model.wte, model.wpe),
                    run_after=lambda idx, offset: (model.embed(idx, offset), idx.shape[1]))]
    paths = []
    for i, block in enumerate(model.blocks):
        path = f"blocks.{i}"
        paths.append(path)
        stages += [_attention_stage(path, block), _mlp_stage(path, block)]
    stages.append(Stage("head", model.head, (model.ln_f, model.lm_head), mixes_positions=False))
    return StagedModel(model, tuple(stages), tuple(paths), next_token_loss, next_token_pairs, positions_dim=1,
                       remember=lambda inputs, memory: _remember(model, inputs, memory), grow=_grow, trim=_trim,
                       layout=LAYOUT)


def _grow(memory: tuple, added: list) -> tuple:
    """The memory, then the positions a step ran after it: the embedding's next position moves on, each attention's
    keys and values take the step's own (computed with the weights before its update, as `_remember`'s are)."""
    grown = [memory[0] + added[0]]
    for entry, new in zip(memory[1:], added[1:]):
        grown.append(None if entry is None else (torch.cat((entry[0], new[0]), 2), torch.cat((entry[1], new[1]), 2)))
    return tuple(grown)


def _trim(memory: tuple, n: int) -> tuple:
    """The memory of its first `n` positions (views: nothing is copied)."""
    return (n, *(None if entry is None else (entry[0][:, :, :n], entry[1][:, :, :n]) for entry in memory[1:]))


@torch.no_grad()
def _remember(model: nn.Module, inputs: torch.Tensor, memory: tuple | None) -> tuple:
    """Per stage: the embedding's next position; each attention's keys and values (earlier ones and `inputs`');
    None for the position-wise stages. Computed with the weights of the moment (later steps leave it as it was)."""
    offset = 0 if memory is None else memory[0]
    x = model.embed(inputs, offset)
    entries: list = [offset + inputs.shape[1]]
    for i, block in enumerate(model.blocks):
        x, cache = block(x, None if memory is None else memory[1 + 2 * i], return_cache=True)
        entries += [tuple(t.contiguous() for t in cache), None]  # attention reads it as it is, copying nothing
    return (*entries, None)
