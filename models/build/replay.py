"""Generating the replay text: passages the base model samples itself (`pocketkb build-replay`), which the learner
reads through `models.general_replay` to roll back rounds that make general English harder.
"""
from __future__ import annotations

from pathlib import Path

import torch

from models.gpt import GPT
from models.safe_io import atomic_write_bytes
from models.tokenizer import BOS_ID, Tokenizer


@torch.inference_mode()
def generate_token_rows(model: GPT, samples: int, length: int, temperature: float = 0.9, top_k: int = 50,
                        seed: int = 0) -> list[list[int]]:
    """`samples` token rows of `length` tokens after BOS, sampled from the model (top-k, with temperature)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    rows = torch.full((samples, 1), BOS_ID, dtype=torch.long)
    logits, cache = model.decode(rows)
    for _ in range(length):
        scores = logits[:, -1].float() / temperature
        kth = scores.topk(top_k, dim=-1).values[:, -1:]
        probs = torch.softmax(scores.masked_fill(scores < kth, -torch.inf), dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator)
        rows = torch.cat([rows, nxt], dim=1)
        logits, cache = model.decode(nxt, cache)
    return rows[:, 1:].tolist()


def build(model: GPT, tokenizer: Tokenizer, path: str | Path, samples: int = 256, length: int = 64,
          seed: int = 0) -> list[str]:
    """Write `samples` generated passages, one per line, to `path`; return them."""
    lines = [" ".join(tokenizer.decode(row).split()) for row in generate_token_rows(model, samples, length, seed=seed)]
    lines = [line for line in lines if line]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return lines
