"""The learner: dynamic evaluation while the user types. Committed text is cut into segments of at most 8 tokens;
each is scored (test), then trained on with one step of its mode's update rule (then train).

A round (the sentences that arrived together) rolls back whole if its text is garbage or a step diverged; when new
text is predicted worse than by the base model, the personal delta is halved.
"""
from __future__ import annotations

import copy
import math
import re
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from app.typing.words import WORD_CHAR
from app.learning.modes import mode as mode_settings
from engine.dyneval import ModelReference
from engine.optimizer import OptimizerConfig
from engine.plan import TrainPlan, compile_plan
from engine.segments import Windowing, rows_after
from models import SCHEMES_DIR
from models.gpt import GPT
from models.grad_stats import GradStats
from models.tokenizer import BOS_ID, Tokenizer

_WORD = re.compile(WORD_CHAR + "+")
PREFIX_CACHE_BYTES = 1 << 20  # a segment's frozen-prefix output, reused by the check after its step
Publish = Callable[[dict[str, torch.Tensor]], None]
Absorb = Callable[[list[str]], None]


@dataclass
class LearnerConfig:
    mode: str = "sparse"
    segment: int = 8                # tokens per training step (a sentence is cut into near-equal segments of at most this)
    context: int = 120              # tokens of earlier text in front of a segment (segment + context <= block size)
    context_keep: int = 96          # when the next segment would not fit, the window drops all but this many tokens:
                                    # it moves in jumps, so between them a step extends the remembered context
    context_sentences: int = 8      # earlier sentences the context is taken from
    budget_ms: float = 400.0        # a round stops taking sentences once it has run this long (the rest wait)
    garbage_share: float = 0.5      # a round whose words are mostly unknown (to the vocabulary and to the user) ...
    garbage_words: int = 12         # ... and that has at least this many words is garbage: not learned
    divergence_nats: float = 1.0    # a step that makes its own segment this much worse has diverged: roll back
    judged_segments: int = 64       # segments, each scored before it is learned, that decide a pull-back
    judge_every: int = 4            # one segment in this many is also scored by the base model (a forward pass)
    base_tolerance: float = 0.01    # their loss may exceed the base model's by this share before the delta halves
    general_tolerance: float = 0.08  # rise of general-text loss over the base model's that rolls a round back
    general_rows: int = 16          # passages of the base model's text the general check scores
    general_every: int = 16         # rounds between general checks (they run the blocks learning changed)
    general_scored: int = 16        # newest positions of each passage the general check scores
    lr: dict[str, float] = field(default_factory=dict)     # per mode, overriding the registry's (tuning)
    decay: dict[str, float] = field(default_factory=dict)  # per mode, overriding the registry's (tuning)
    keep_scores: bool = False       # keep every segment's (tokens, personal nats, base nats): the benchmarks read them
                                    # (then every segment is scored by the base model too)

    def __post_init__(self) -> None:
        mode_settings(self.mode)  # refuses an unknown mode

    def optimizer(self, mode: str) -> OptimizerConfig:
        return mode_settings(mode).optimizer(self.lr.get(mode), self.decay.get(mode))


@dataclass
class LearnerStats:
    rounds_accepted: int = 0
    rounds_rolled_back: int = 0
    pullbacks: int = 0              # times new text was predicted worse than by the base model: delta halved
    steps: int = 0
    sentences_learned: int = 0
    tokens_learned: int = 0
    learn_ms: float = 0.0           # wall time of rounds: steps and checks
    step_ms: float = 0.0            # wall time of the engine steps alone
    last_step_ms: float | None = None
    last_loss: float | None = None  # the last segment's loss, scored before it was learned
    last_general: float | None = None
    training_bytes: int | None = None  # measured by the engine on the last step: activations + grads + optimizer

    def counters(self) -> dict[str, int]:
        return {"rounds_accepted": self.rounds_accepted, "rounds_rolled_back": self.rounds_rolled_back,
                "steps": self.steps, "sentences_learned": self.sentences_learned}


@dataclass(frozen=True)
class RoundResult:
    accepted: bool
    steps: int
    ms: float
    reason: str = ""


@dataclass(frozen=True)
class SegmentScore:
    """One segment, scored before any update that saw it: by the personal model and by the base model."""

    tokens: int
    personal: float  # mean nats/token
    base: float | None  # None: not scored by the base model (see `judge_every`)


def per_token(scores: Iterable[SegmentScore], which: str) -> float:
    """Mean nats/token of `scores` by the personal or the base model (`which`), weighted by their tokens."""
    scores = list(scores)
    return sum(s.tokens * getattr(s, which) for s in scores) / max(sum(s.tokens for s in scores), 1)


class Learner:
    """Trains a private copy of `model`; kept rounds are handed to `publish` (parameter name -> new value), and the
    sentences they took in to `absorb` (with learning off, every sentence is); those of rolled-back rounds to `reject`.

    Thread-safe: every public method takes the learner's lock, so a round runs whole before a mode switch, a reset
    or a load takes effect.
    """

    def __init__(self, model: GPT, tokenizer: Tokenizer, general_text: list[str], config: LearnerConfig | None = None,
                 publish: Publish | None = None, schemes_dir: Path = SCHEMES_DIR, absorb: Absorb | None = None,
                 reject: Absorb | None = None, grad_stats: GradStats | None = None,
                 known: Callable[[str], bool] | None = None):
        self.config = config or LearnerConfig()
        if self.config.segment + self.config.context > model.config.block_size:
            raise ValueError("segment + context tokens must fit the model's block size")
        self.windowing = Windowing(self.config.segment, self.config.context, self.config.context_keep)
        self.tokenizer = tokenizer
        self.publish = publish or (lambda tensors: None)
        self.absorb = absorb or (lambda sentences: None)
        self.reject = reject or (lambda sentences: None)
        self.known = known  # whether a word is in the vocabulary or the user's own (None: no garbage guard)
        self.schemes_dir = Path(schemes_dir)
        self.model = copy.deepcopy(model).eval()
        self.base = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        self.reference = None if grad_stats is None else ModelReference(self.base, grad_stats.all_factors())
        self.stats = LearnerStats()
        self.scores: list[SegmentScore] = []
        self.sentences: list[str] = []
        self.max_sentences = 20_000
        self._learned_upto = 0
        self._window: list[int] = []  # the tokens before the sentence at `_window_upto`, as the last round left them
        self._window_upto = -1
        self._absorbed_upto = 0  # sentences before this one have been handed to `absorb` or turned down
        self._rejected: set[str] = set()  # sentences of rolled-back rounds
        self._incoming: deque[str] = deque()  # finished sentences not yet taken in by a round
        self._requested_mode: str | None = None
        self._lock = threading.RLock()
        self._plan: TrainPlan | None = None
        self._measured: dict[str, int] = {}
        self._moved: set[str] = set()  # parameters that may differ from the base model's
        self._general = self._general_rows(general_text)[: self.config.general_rows]
        self._general_hidden: tuple[int, tuple | None] | None = None  # (first changed block, their states there)
        self._base_general = self._general_loss()
        self._rounds = 0
        self._judged: deque[SegmentScore] = deque(maxlen=self.config.judged_segments)

    # --- data ------------------------------------------------------------------------------------------------
    def _general_rows(self, lines: list[str]) -> list[list[int]]:
        rows = [[BOS_ID, *self.tokenizer.encode(line)][: self.config.context + self.config.segment + 1]
                for line in lines]
        return [row for row in rows if len(row) > self.config.general_scored]

    def _context(self, first: int) -> list[int]:
        """Tokens of the text before sentence `first` (a start-of-text token in front of the very first)."""
        start = max(0, first - self.config.context_sentences)
        ids = ([BOS_ID] if start == 0 else []) + self.tokenizer.encode(" ".join(self.sentences[start:first]))
        return ids[-self.config.context:]

    @staticmethod
    def _stack(rows: list[list[int]]) -> torch.Tensor:
        """Rows cut to a common length from the left (the newest tokens are the ones that count)."""
        length = min(len(row) for row in rows)
        return torch.tensor([row[len(row) - length:] for row in rows], dtype=torch.long)

    # --- scoring ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _losses(self, rows: list[list[int]], last: int, weights: dict[str, torch.Tensor] | None = None,
                hidden: tuple[int, torch.Tensor] | None = None) -> list[float]:
        """Per row: mean next-token loss over its newest `last` positions (with `weights`: those, not the model's;
        with `hidden` from `_hidden`: from the first block that differs from the base model on)."""
        batch = self._stack(rows)
        inputs, kwargs = batch[:, :-1], {"last": last, "hidden": hidden}
        logits = (self.model(inputs, **kwargs) if weights is None
                  else functional_call(self.model, weights, (inputs,), kwargs))
        targets = batch[:, 1:][:, -last:]
        losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        return losses.view(len(rows), -1).mean(1).tolist()

    @torch.no_grad()
    def _hidden(self, rows: list[list[int]]) -> tuple[int, torch.Tensor] | None:
        """The rows' states at the first block the learning has changed: the same for the personal and the base
        model, so scoring both runs only the blocks from there on. None when the embeddings changed."""
        first = self.model.first_block_changed_by(self._moved)
        return None if first == 0 else (first, self.model.hidden_states(self._stack(rows)[:, :-1], first))

    def _general_loss(self) -> float:
        """Mean loss on the general-text check; the rows' states before the changed blocks are kept between checks."""
        if not self._general:
            return 0.0
        first = self.model.first_block_changed_by(self._moved)
        if self._general_hidden is None or self._general_hidden[0] != first:
            self._general_hidden = (first, self._hidden(self._general))
        return statistics.fmean(self._losses(self._general, self.config.general_scored, hidden=self._general_hidden[1]))

    # --- rounds ----------------------------------------------------------------------------------------------
    def add(self, sentence: str) -> None:
        """A finished sentence to learn from. Never waits for a running round: it joins at the next one."""
        if len(self._incoming) >= self.max_sentences:  # learning off for long: keep what the history keeps
            self._incoming.popleft()
        self._incoming.append(sentence)

    def _sync(self) -> None:
        """Under the lock: take in the sentences and the mode switch that arrived meanwhile."""
        while self._incoming:
            self.sentences.append(self._incoming.popleft())
        drop = len(self.sentences) - self.max_sentences  # the oldest go, as in the history
        if drop > 0:
            del self.sentences[:drop]
            self._window_upto -= drop
            self._learned_upto = max(0, self._learned_upto - drop)
            self._absorbed_upto = max(0, self._absorbed_upto - drop)
            self._rejected &= set(self.sentences)  # bounded with the sentences it refers to
        requested, self._requested_mode = self._requested_mode, None
        if requested is not None and requested != self.config.mode:
            self._close_plan()
            self.config.mode = requested
            if requested == "off":  # what was waiting goes to the word statistics unlearned
                self._learned_upto = len(self.sentences)
                self._settle(accept=True)

    def pending(self) -> int:
        """Finished sentences not learned from yet (with learning off, not yet taken in); a hint, read without the lock."""
        if self.mode == "off":
            return len(self._incoming)
        return len(self._incoming) + len(self.sentences) - self._learned_upto

    def run_round(self) -> RoundResult | None:
        """Test, then train, segment by segment, on the sentences not learned yet (as many as the time budget
        allows; the rest wait for the next round); then keep or roll back the round. None when there is nothing new
        (or learning is off)."""
        with self._lock:
            self._sync()
            first = self._learned_upto
            if self.config.mode == "off" or first >= len(self.sentences):
                self._learned_upto = len(self.sentences)
                self._settle(accept=True)
                return None
            start = time.perf_counter()
            plan = self._ensure_plan()
            snapshot = plan.delta()
            ids = self._window if self._window_upto == first else self._context(first)
            scores, rows = [], []
            stop = first
            while stop < len(self.sentences) and (stop == first or self._ms(start) < self.config.budget_ms):
                for row, n in self._segments(ids, self.sentences[stop]):
                    scores.append(self._learn_segment(plan, row, n))
                    rows.append((row, n))
                    ids = row
                stop += 1
            self._window, self._window_upto = ids, stop
            reason = self._verdict(self.sentences[first:stop], plan, (*rows[-1], scores[-1].personal))
            self._rounds += 1
            self._learned_upto = stop
            self.stats.training_bytes = plan.memory().training_bytes
            if reason:
                plan.load_delta(snapshot)
                # the weights the round tried were never published: its text was seen with those it started from
                scores = [replace(s, personal=self._losses([row], n)[0]) for s, (row, n) in zip(scores, rows)]
                self.stats.rounds_rolled_back += 1
                self._rejected.update(self.sentences[first:stop])
                self._settle(accept=False)
            else:
                self.stats.rounds_accepted += 1
                self.stats.sentences_learned += stop - first
                self.stats.tokens_learned += sum(s.tokens for s in scores)
                self._judged.extend(s for s in scores if s.base is not None)
                self.publish(self._touched())
                self._settle(accept=True)
                self._pull_back_if_worse()
            if self.config.keep_scores:  # every segment, scored before any update that saw it
                self.scores.extend(scores)
            ms = self._ms(start)
            self.stats.learn_ms += ms
            return RoundResult(not reason, len(scores), ms, reason)

    @staticmethod
    def _ms(start: float) -> float:
        return (time.perf_counter() - start) * 1000

    def _segments(self, window: list[int], sentence: str) -> list[tuple[list[int], int]]:
        """The sentence's training rows after the window (engine/segments.py)."""
        return rows_after(window, self.tokenizer.encode(sentence), self.windowing)

    def _learn_segment(self, plan: TrainPlan, row: list[int], n: int) -> SegmentScore:
        """One step on the segment; its loss, computed before the update, is the prequential score."""
        judged = self.config.keep_scores or self.stats.steps % self.config.judge_every == 0
        base = self._base_loss(row, n) if judged else None
        report = plan.step(self._stack([row]), positions=n)
        self.stats.steps += 1
        self.stats.step_ms += report.step_ms
        self.stats.last_step_ms = report.step_ms
        self.stats.last_loss = report.loss
        return SegmentScore(n, report.loss, base)

    def _base_loss(self, row: list[int], n: int) -> float:
        rows = [row]
        return self._losses(rows, n, self.base, self._hidden(rows))[0]

    def _is_garbage(self, sentences: list[str]) -> bool:
        """Mostly words nobody uses: a paste of noise, not the user's language (a new name among known words is not)."""
        if self.known is None:
            return False
        words = [w for s in sentences for w in _WORD.findall(s) if not w.isdigit()]
        unknown = sum(not self.known(w) for w in words)
        return len(words) >= self.config.garbage_words and unknown > self.config.garbage_share * len(words)

    def _verdict(self, sentences: list[str], plan: TrainPlan, last_row) -> str:
        """Why the round must roll back, or "" to keep it."""
        if not all(math.isfinite(p.sum().item()) for p in plan.trainable.values()):
            return "non-finite"
        if self._is_garbage(sentences):
            return "garbage"
        row, n, before = last_row
        after = plan.evaluate_rows(self._stack([row]), positions=n)[0]
        if not math.isfinite(after) or after > before + self.config.divergence_nats:
            return "diverged"
        if self._rounds % self.config.general_every == 0:
            general = self._general_loss()
            self.stats.last_general = general
            if not math.isfinite(general) or general > self._base_general * (1 + self.config.general_tolerance):
                return "general text loss rose"
        return ""

    def _settle(self, accept: bool) -> None:
        """Every sentence taken in up to `_learned_upto` is decided: handed to `absorb` if `accept`, else `reject`."""
        upto = max(self._learned_upto, self._absorbed_upto)
        if self._absorbed_upto < upto:
            (self.absorb if accept else self.reject)(self.sentences[self._absorbed_upto:upto])
        self._absorbed_upto = upto

    def _pull_back_if_worse(self) -> None:
        """When over the last `judged_segments` segments the personal model predicted new text worse than the base
        model (each scored before it was learned), it has learned what does not carry over: its delta is halved."""
        if len(self._judged) < self._judged.maxlen:
            return
        personal, base = (per_token(self._judged, which) for which in ("personal", "base"))
        if personal <= base * (1 + self.config.base_tolerance):
            return
        self._judged.clear()
        self._close_plan()  # weights change outside the plan: the next round builds a new one
        params = dict(self.model.named_parameters())
        moved = {name: p for name, p in params.items() if not torch.equal(p, self.base[name])}
        with torch.no_grad():
            for name, p in moved.items():
                p.copy_(self.base[name] + 0.5 * (p - self.base[name]))
        self.stats.pullbacks += 1
        self.publish({name: p.detach().clone() for name, p in moved.items()})

    def _ensure_plan(self) -> TrainPlan:
        if self._plan is None:
            self._plan = self._compile(self.model, self.config.mode)
            self._moved |= self._plan_names()
        return self._plan

    def _compile(self, model: GPT, mode: str) -> TrainPlan:
        optimizer = self.config.optimizer(mode)
        if optimizer.kind == "dyneval" and self.reference is None:
            raise ValueError(f"mode {mode!r} learns by dynamic evaluation, which needs the base model's gradient "
                             "statistics (run `pocketkb grad-stats`)")
        return compile_plan(model.staged(), mode_settings(mode).scheme(self.schemes_dir), optimizer,
                            cache_bytes=PREFIX_CACHE_BYTES, reference=self.reference)

    def _plan_names(self) -> set[str]:
        """The model parameters the current plan trains (an adapter: the weight it is merged into)."""
        params = dict(self.model.named_parameters())
        names = {name for name in self._plan.trainable if name in params}
        return names | {f"{path}.weight" for path in self._plan.adapters}

    def _touched(self) -> dict[str, torch.Tensor]:
        """The model parameters the current plan trains, as they are now."""
        params = dict(self.model.named_parameters())
        return {name: params[name].detach().clone() for name in self._plan_names()}

    def _close_plan(self) -> None:
        """Also forgets what was scored under the plan (a plan may hold frozen weights as int8)."""
        self._general_hidden = None
        if self._plan is not None:
            self._plan.close()
            self._plan = None

    # --- modes and state -------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._requested_mode or self.config.mode

    def set_mode(self, mode: str) -> None:
        """What trains from now on; what was learned stays in the weights. Never waits for a running round:
        the switch then takes effect when it ends."""
        mode_settings(mode)
        self._requested_mode = mode
        if self._lock.acquire(blocking=False):
            try:
                self._sync()
            finally:
                self._lock.release()

    def has_learned(self) -> bool:
        """Whether the personal model may differ from the base: it has learned, or holds a loaded delta."""
        return bool(self._moved)

    def deltas(self) -> dict[str, torch.Tensor]:
        """The personal model: current weights minus base, for every parameter that differs."""
        with self._lock:
            return {name: (p.detach() - self.base[name]).clone() for name, p in self.model.named_parameters()
                    if not torch.equal(p, self.base[name])}

    @torch.no_grad()
    def load_deltas(self, deltas: dict[str, torch.Tensor], sentences: list[str], rejected: set[str] = frozenset()
                    ) -> None:
        """Weights = base + `deltas` (missing names: base); `sentences` are the history already learned from, but
        those in `rejected` (turned down by earlier rounds)."""
        with self._lock:
            self._sync()
            self._close_plan()
            self._judged.clear()  # scores of the weights being replaced
            self._incoming.clear()  # `sentences` is the whole history now
            for name, p in self.model.named_parameters():
                p.copy_(self.base[name] + deltas[name] if name in deltas else self.base[name])
            self._moved = set(deltas)
            self.sentences = list(sentences)
            self._rejected = set(rejected) & set(self.sentences)
            self._learned_upto = self._absorbed_upto = len(self.sentences)  # the caller counts these afresh
            self._window_upto = -1
            self.publish({name: p.detach().clone() for name, p in self.model.named_parameters()})

    def replace_sentences(self, sentences: list[str]) -> None:
        """The history changed under us (forget): learn on from what is left."""
        with self._lock:
            self._sync()
            self._incoming.clear()
            self.sentences = list(sentences)
            self._learned_upto = min(self._learned_upto, len(self.sentences))
            self._window_upto = -1
            self._absorbed_upto = len(self.sentences)  # the caller counts what is left afresh
            self._rejected &= set(self.sentences)

    def measure_training_bytes(self, mode: str) -> int:
        """Training memory of `mode`'s plan, measured on one step of a segment-sized row on a copy of the base.

        Memoised per mode; 0 for "off". What the gauges show beside the running plan's own measurement.
        """
        if mode == "off":
            return 0
        if mode not in self._measured:
            model = copy.deepcopy(self.model)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(self.base[name])
            row = self._stack(self._general[:1])
            with self._compile(model, mode) as plan:
                plan.step(row, positions=self.config.segment)
                with torch.no_grad():
                    for name, p in model.named_parameters():
                        p.copy_(self.base[name])
                self._measured[mode] = plan.memory().training_bytes
        return self._measured[mode]

    def measured_training_bytes(self, mode: str) -> int | None:
        """What `measure_training_bytes(mode)` found, if it has run (it takes a training step)."""
        return 0 if mode == "off" else self._measured.get(mode)

    def model_bytes(self) -> int:
        """Bytes of the weights one model copy holds (the predictor's; the learner keeps a second one)."""
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def close(self) -> None:
        with self._lock:
            self._close_plan()
