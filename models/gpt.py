"""A small decoder-only transformer (GPT) in one file: config dataclass, SDPA attention, tied embeddings.

Runs in three stages the engine can split (`embed`, `blocks`, `head`) and decodes incrementally with a KV cache.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from engine.staged import StagedModel

# One layer's cached keys and values, each (batch, heads, positions, head_dim).
LayerCache = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 4096
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GPTConfig":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, past: LayerCache | None = None, prefix: LayerCache | None = None,
                own_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, LayerCache]:
        """`past`: each row's own cached keys/values; `prefix`: a cache every row attends to first (one row that
        all share, or one per row); `own_mask` (with a prefix): which of the row's own keys (past and new) each new
        position sees, instead of the causal order (a tree of tokens packed in one row).

        Returns the output and the rows' own keys/values (past and new; the shared prefix is not copied in).
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        if prefix is not None:
            y = _attend_after_prefix(q, k, v, prefix, own_mask)
        elif past is None or T > 1:
            mask = None if past is None else _offset_causal_mask(T, k.shape[2], x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=past is None,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y), (k, v)


def _attend_after_prefix(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix: LayerCache,
                         own_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention over a prefix and then each row's own keys (causal among the last T, or as `own_mask` says). The
    prefix is one row that every row shares, or one per row; it is never copied or concatenated.

    A shared prefix meets the rows' queries folded into one matrix.
    """
    B, H, T, D = q.shape
    P, S = prefix[0].shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(D)
    shared = prefix[0].shape[0] == 1
    if shared:
        pk, pv = prefix[0][0], prefix[1][0]  # (H, P, D)
        folded = q.transpose(0, 1).reshape(H, B * T, D)
        on_prefix = (folded @ pk.transpose(1, 2)).view(H, B, T, P).transpose(0, 1) * scale
    else:
        on_prefix = q @ prefix[0].transpose(2, 3) * scale
    mask = _offset_causal_mask(T, S, q.device) if own_mask is None else own_mask
    on_own = (q @ k.transpose(2, 3) * scale).masked_fill(~mask, -math.inf)
    weights = torch.cat((on_prefix, on_own), dim=-1).softmax(dim=-1)
    w_prefix, w_own = weights.split((P, S), dim=-1)
    if shared:
        from_prefix = (w_prefix.transpose(0, 1).reshape(H, B * T, P) @ pv).view(H, B, T, D).transpose(0, 1)
    else:
        from_prefix = w_prefix @ prefix[1]
    return from_prefix + w_own @ v


def _offset_causal_mask(T: int, S: int, device: torch.device) -> torch.Tensor:
    """Boolean mask letting query i (the last T of S positions) see keys 0 .. S-T+i."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, past: LayerCache | None = None, return_cache: bool = False,
                prefix: LayerCache | None = None, own_mask: torch.Tensor | None = None):
        a, cache = self.attn(self.ln_1(x), past, prefix, own_mask)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return (x, cache) if return_cache else x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def staged(self) -> StagedModel:
        """This model as the engine sees it: stages, next-token loss, tensor layout (`models.gpt_stages`)."""
        from models.gpt_stages import staged_lm

        return staged_lm(self)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # The three stages, separately callable so the engine can cut the network between them.
    def embed(self, idx: torch.Tensor, pos_offset: int = 0) -> torch.Tensor:
        pos = torch.arange(pos_offset, pos_offset + idx.shape[1], device=idx.device)
        return self.wte(idx) + self.wpe(pos)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.ln_f(x))

    def forward(self, idx: torch.Tensor, last: int | None = None,
                hidden: tuple[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits for every position of `idx` (batch, time), or for its newest `last` positions only (the vocabulary
        projection is the costly part). `hidden`, (i, the input of block i) from `hidden_states`, skips what comes
        before block i."""
        start, x = hidden if hidden is not None else (0, self.embed(idx))
        for block in self.blocks[start:]:
            x = block(x)
        return self.head(x if last is None else x[:, -last:])

    def hidden_states(self, idx: torch.Tensor, upto: int) -> torch.Tensor:
        """The input of block `upto` (`n_layer`: of the final norm) for `idx`."""
        x = self.embed(idx)
        for block in self.blocks[:upto]:
            x = block(x)
        return x

    def first_block_changed_by(self, names: Iterable[str]) -> int:
        """The first block whose input changes when these parameters do (`n_layer` for the final norm alone, 0 for
        the embeddings): the hidden states before it stay as they were."""
        first = self.config.n_layer
        for name in names:
            parts = name.split(".")
            if parts[0] == "blocks":
                first = min(first, int(parts[1]))
            elif parts[0] != "ln_f":
                return 0
        return first

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)

    @torch.inference_mode()
    def decode(self, idx: torch.Tensor, past: list[LayerCache] | None = None,
               prefix: list[LayerCache] | None = None, last: int | None = None
               ) -> tuple[torch.Tensor, list[LayerCache]]:
        """Incremental decoding: logits of the new tokens `idx` given the cache of earlier ones.

        `past` holds each row's own earlier tokens; `prefix`, if given, a batch-1 cache of tokens before
        those that every row shares. The returned cache covers `past` and the new tokens, not the prefix.
        `last` computes the logits of the newest `last` positions only (the vocabulary projection is the costly part).
        """
        offset = sum(c[0][0].shape[2] for c in (prefix, past) if c is not None)
        x = self.embed(idx, offset)
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, None if past is None else past[i], return_cache=True,
                             prefix=None if prefix is None else prefix[i])
            caches.append(cache)
        return self.head(x if last is None else x[:, -last:]), caches

    def decode_tree(self, idx: torch.Tensor, depth: torch.Tensor, visible: torch.Tensor, prefix: list[LayerCache],
                    past: list[LayerCache] | None = None) -> tuple[torch.Tensor, list[LayerCache]]:
        """Decode the nodes of a tree of tokens that all follow `prefix` (a batch-1 cache), in one pass.

        `idx` (1, R) holds new nodes at `depth` (R) below the prefix; `past`, the keys/values of nodes decoded
        before (1, H, N, D per layer); `visible` (R, N + R), which of those and of the new nodes each new node
        sees: its ancestors and itself. Returns the new nodes' logits and the cache of all N + R nodes.
        """
        x = self.wte(idx) + self.wpe(prefix[0][0].shape[2] + depth)
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, None if past is None else past[i], return_cache=True, prefix=prefix[i],
                             own_mask=visible)
            caches.append(cache)
        return self.head(x), caches
