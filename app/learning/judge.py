"""The guard over learning: scores by the base model beside the personal one, the checks that roll a round back
(non-finite weights, garbage text, a diverged step, general text made harder), and when to pull the delta back.
"""
from __future__ import annotations

import math
import re
import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from app.learning.base_scorer import BaseScorer
from app.learning.settings import LearnerConfig
from app.typing.words import WORD_CHAR
from engine.plan import TrainPlan
from models.gpt import GPT
from models.tokenizer import BOS_ID, Tokenizer

_WORD = re.compile(WORD_CHAR + "+")


@dataclass(frozen=True)
class SegmentScore:
    """One segment, scored before any update that saw it: by the personal model and by the base model."""

    tokens: int
    personal: float  # mean nats/token
    base: float | None  # None: not scored by the base model (see `judge_every`)
    row: tuple[int, ...] = ()  # the segment after its context (kept for `Learner.scored`, with `keep_scores`)


def per_token(scores: Iterable[SegmentScore], which: str) -> float:
    """Mean nats/token of `scores` by the personal or the base model (`which`), weighted by their tokens."""
    scores = list(scores)
    return sum(s.tokens * getattr(s, which) for s in scores) / max(sum(s.tokens for s in scores), 1)


def stack_rows(rows: list[list[int]]) -> torch.Tensor:
    """Rows cut to a common length from the left (the newest tokens are the ones that count)."""
    length = min(len(row) for row in rows)
    return torch.tensor([row[len(row) - length:] for row in rows], dtype=torch.long)


class Judge:
    """Scores the learner's `model` against the `base` weights; `moved` names the parameters that may differ."""

    def __init__(self, model: GPT, base: dict[str, torch.Tensor], tokenizer: Tokenizer, general_text: list[str],
                 config: LearnerConfig, known: Callable[[str], bool] | None = None):
        self.model, self.base, self.config = model, base, config
        self.known = known  # whether a word is in the vocabulary or the user's own (None: no garbage guard)
        self.moved: set[str] = set()
        rows = [[BOS_ID, *tokenizer.encode(line)][: config.context + config.segment + 1] for line in general_text]
        self.general = [row for row in rows if len(row) > config.general_scored][: config.general_rows]
        self._general_hidden: tuple[int, tuple | None] | None = None  # (first changed block, their states there)
        self.general_ms = 0.0  # time spent on the general-text check, ever (the learner's cost table reads it)
        self.base_general = self.general_loss()
        self.base_scorer = BaseScorer(model, base)
        self.judged: deque[SegmentScore] = deque(maxlen=config.judged_segments)

    @torch.no_grad()
    def losses(self, rows: list[list[int]], last: int, hidden: tuple[int, torch.Tensor] | None = None
               ) -> list[float]:
        """Per row: the model's mean next-token loss over its newest `last` positions (with `hidden` from
        `hidden_at_change`: from the first block that differs from the base model on)."""
        batch = stack_rows(rows)
        logits = self.model(batch[:, :-1], last=last, hidden=hidden)
        targets = batch[:, 1:][:, -last:]
        losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        return losses.view(len(rows), -1).mean(1).tolist()

    @torch.no_grad()
    def hidden_at_change(self, rows: list[list[int]]) -> tuple[int, torch.Tensor] | None:
        """The rows' states at the first block the learning has changed: the same for the personal and the base
        model, so scoring both runs only the blocks from there on. None when the embeddings changed."""
        first = self.model.first_block_changed_by(self.moved)
        return None if first == 0 else (first, self.model.hidden_states(stack_rows(rows)[:, :-1], first))

    def general_loss(self) -> float:
        """Mean loss on the general-text check; the rows' states before the changed blocks are kept between checks."""
        if not self.general:
            return 0.0
        first = self.model.first_block_changed_by(self.moved)
        if self._general_hidden is None or self._general_hidden[0] != first:
            self._general_hidden = (first, self.hidden_at_change(self.general))
        return statistics.fmean(self.losses(self.general, self.config.general_scored, hidden=self._general_hidden[1]))

    def forget_states(self) -> None:
        """The weights below the changed blocks may change (a new plan, a pull-back): states kept go."""
        self._general_hidden = None

    def base_loss(self, row: list[int], n: int) -> float:
        """The base model's mean loss on the newest `n` positions of `row` (its context remembered: `BaseScorer`)."""
        return self.base_scorer.loss(row, n)

    def is_garbage(self, sentences: list[str]) -> bool:
        """Mostly words nobody uses: a paste of noise, not the user's language (a new name among known words is not)."""
        if self.known is None:
            return False
        words = [w for s in sentences for w in _WORD.findall(s) if not w.isdigit()]
        unknown = sum(not self.known(w) for w in words)
        return len(words) >= self.config.garbage_words and unknown > self.config.garbage_share * len(words)

    def verdict(self, sentences: list[str], plan: TrainPlan, last_row, check_general: bool) -> tuple[str, float | None]:
        """Why the round must roll back, or "" to keep it; and the general-text loss, if it was checked."""
        if not all(math.isfinite(p.sum().item()) for p in plan.trainable.values()):
            return "non-finite", None
        if self.is_garbage(sentences):
            return "garbage", None
        row, n, before = last_row
        after = plan.evaluate_rows(stack_rows([row]), positions=n)[0]
        if not math.isfinite(after) or after > before + self.config.divergence_nats:
            return "diverged", None
        if check_general:
            start = time.perf_counter()
            general = self.general_loss()
            self.general_ms += (time.perf_counter() - start) * 1000
            if not math.isfinite(general) or general > self.base_general * (1 + self.config.general_tolerance):
                return "general text loss rose", general
            return "", general
        return "", None

    def worse_than_base(self) -> bool:
        """Whether, over the last `judged_segments` segments (each scored before it was learned), the personal model
        predicted new text worse than the base model: it has learned what does not carry over."""
        if len(self.judged) < self.judged.maxlen:
            return False
        personal, base = (per_token(self.judged, which) for which in ("personal", "base"))
        if personal <= base * (1 + self.config.base_tolerance):
            return False
        self.judged.clear()
        return True
