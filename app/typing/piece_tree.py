"""The pieces of the words scored after one context, kept as a tree: each node's keys, values and next-piece
log-probabilities, so a word costs the model only the pieces no earlier word shared, and all of them one pass.

Words share first pieces (" re" in "report", "reply") and a keystroke's words share most of the last one's.
"""
from __future__ import annotations

from typing import Callable

import torch

from models.gpt import LayerCache

Path = tuple[int, ...]
# (new nodes (1, R), their depth (R), what each sees (R, N + R), context cache, earlier nodes' cache) -> (logits, cache)
DecodeTree = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, list[LayerCache], list[LayerCache] | None],
                      tuple[torch.Tensor, list[LayerCache]]]


class PieceTree:
    def __init__(self, boundary_ids: torch.Tensor):
        self.boundary_ids = boundary_ids
        self.nodes: dict[Path, int] = {}      # piece path -> node number
        self.cache: list[LayerCache] | None = None  # every node's keys/values per layer, in node order
        self._logp: list[torch.Tensor] = []   # per node: next-piece log-probs after it
        self._end: list[float] = []           # per node: log-prob that a word boundary comes next

    def holds(self, row: list[int]) -> bool:
        return tuple(row) in self.nodes

    def spells(self, row: list[int]) -> bool:
        """Whether the tree gives the probability of the row's pieces (every node but the last is in it)."""
        return len(row) == 1 or tuple(row[:-1]) in self.nodes

    def grow(self, decode: DecodeTree, context: list[LayerCache], rows: list[list[int]],
             whole: list[list[int]] = ()) -> bool:
        """Decode, in one pass after the `context` cache, every node the `rows` need to be spelled and every node of
        the `whole` rows, that is not in the tree yet. Returns whether there were any."""
        new: dict[Path, int] = {}
        for row, upto in [(row, len(row) - 1) for row in rows] + [(row, len(row)) for row in whole]:
            for t in range(1, upto + 1):
                path = tuple(row[:t])
                if path not in self.nodes and path not in new:
                    new[path] = len(self.nodes) + len(new)  # parents come before their children
        if not new:
            return False
        visible = torch.zeros(len(new), len(self.nodes) + len(new), dtype=torch.bool)
        for i, path in enumerate(new):
            for t in range(1, len(path) + 1):
                visible[i, self.nodes.get(path[:t], new.get(path[:t]))] = True
        idx = torch.tensor([[path[-1] for path in new]])
        depth = torch.tensor([len(path) - 1 for path in new])
        logits, self.cache = decode(idx, depth, visible, context, self.cache)
        logps = torch.log_softmax(logits[0].float(), dim=-1)
        self._logp.extend(logps.unbind(0))
        self._end.extend(torch.logsumexp(logps[:, self.boundary_ids], dim=-1).tolist())
        self.nodes.update(new)
        return True

    def pieces_logp(self, first_logp: torch.Tensor, row: list[int]) -> float:
        """Log-probability of the row's pieces after the context (`first_logp`: the context's next-piece log-probs);
        every node of the row but its last must be in the tree."""
        total = first_logp[row[0]].item()
        for t in range(1, len(row)):
            total += self._logp[self.nodes[tuple(row[:t])]][row[t]].item()
        return total

    def end(self, row: list[int]) -> float:
        """Log-probability that a word boundary follows the row (the row must be in the tree)."""
        return self._end[self.nodes[tuple(row)]]

    def after(self, row: list[int]) -> tuple[list[LayerCache], torch.Tensor]:
        """The keys/values of the row's nodes in order, and the next-piece log-probs after it."""
        order = torch.tensor([self.nodes[tuple(row[:t])] for t in range(1, len(row) + 1)])
        own = [(k.index_select(2, order), v.index_select(2, order)) for k, v in self.cache]
        return own, self._logp[self.nodes[tuple(row)]]
