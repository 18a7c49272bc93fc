"""The base model's score of each segment, for the guard: the segment's next-token loss after its context.

The base weights never change, so the keys and values of the context are kept between segments and extended by the
tokens that came since (the learner's window grows between its jumps); only a window jump computes them afresh. The
old way ran the whole window (up to 128 tokens) through the model for every segment judged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.gpt import GPT, LayerCache


class BaseScorer:
    """Scores rows with the `base` weights (parameter name -> tensor, shared, never copied) in `model`'s shape."""

    def __init__(self, model: GPT, base: dict[str, torch.Tensor]):
        with torch.device("meta"):
            self.model = GPT(model.config)
        self.model.load_state_dict({**base, "lm_head.weight": base["wte.weight"]}, assign=True)
        self.model.lm_head.weight = self.model.wte.weight  # tied, as in every GPT
        self.model.eval()
        self._tokens: list[int] = []  # the positions the kept keys and values cover
        self._cache: list[LayerCache] | None = None

    @torch.inference_mode()
    def loss(self, row: list[int], last: int) -> float:
        """Mean next-token loss of `row` over its newest `last` positions (the targets are `row[1:]`)."""
        inputs, targets = row[:-1], row[-last:]
        context = inputs[:-last]
        held = len(self._tokens)
        if self._cache is None or held > len(context) or self._tokens != context[:held]:
            held, self._cache = 0, None
        logits, self._cache = self.model.decode(torch.tensor([inputs[held:]]), self._cache, last=last)
        self._tokens = inputs
        return F.cross_entropy(logits[0, -last:].float(), torch.tensor(targets)).item()
