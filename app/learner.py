"""The learner: fine-tunes its own copy of the model on the user's finished sentences, in gated rounds of engine steps.

A round is kept only if held-out user sentences and the base model's own general text do not get worse; else it rolls back.
"""
from __future__ import annotations

import copy
import json
import math
import random
import statistics
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.lm import staged_lm
from engine.optimizer import OptimizerConfig
from engine.plan import TrainPlan, compile_plan
from engine.scheme import UpdateScheme, builtin_scheme
from models import SCHEMES_DIR
from models.gpt import GPT
from models.tokenizer import BOS_ID, Tokenizer

MODES = ("off", "sparse", "full", "bias-only", "last-block", "lora")
Publish = Callable[[dict[str, torch.Tensor]], None]
Absorb = Callable[[list[str]], None]


def _default_lr() -> dict[str, float]:
    return {"sparse": 2e-4, "full": 3e-5, "bias-only": 3e-3, "last-block": 3e-4, "lora": 1e-3}


@dataclass
class LearnerConfig:
    mode: str = "sparse"
    window: int = 48                # tokens of context per training sample (each predicts the next token)
    scored: int = 12                # newest positions of a window the held-out and general losses cover
    context_sentences: int = 6      # earlier sentences joined in front of the one a window ends at
    batch: int = 2                  # samples per step: newest sentences first, then replay of older ones
    newest: int = 8                 # at most this many not-yet-learned sentences per step (a burst fills it)
    max_cover_rows: int = 4         # windows per new sentence, when the scheme's loss covers only the newest positions
    general: int = 0                # samples per step from the base model's own text (off: it pulled learning away
                                    # from the user's text; the general check below guards general English instead)
    steps_per_round: int = 1        # each new sentence trains once (dynamic evaluation): more overfits it
    budget_ms: float = 400.0        # a round stops taking steps once it has run this long
    holdout_every: int = 5          # one sentence in this many is held out (chosen by a hash of its text)
    holdout_size: int = 24          # newest held-out sentences that score each round
    gate_tolerance: float = 0.002   # mean relative rise of held-out loss that rolls a round back
    judged_sentences: int = 32      # new sentences, each scored before it is learned, that decide a pull-back
    base_tolerance: float = 0.0     # their loss may exceed the base model's by this share before the delta halves
    general_tolerance: float = 0.08  # rise of general-text loss over the base model's that rolls a round back
    general_rows: int = 16          # passages of the base model's text the general check scores
    general_every: int = 4          # rounds between general checks (they run the blocks learning changed)
    prefix_cache_mb: float = 8.0    # frozen-prefix outputs kept for replayed samples (least recently used go first)
    lr: dict[str, float] = field(default_factory=_default_lr)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown update mode {self.mode!r}; modes: {', '.join(MODES)}")


@dataclass
class LearnerStats:
    rounds_accepted: int = 0
    rounds_rolled_back: int = 0
    pullbacks: int = 0              # times new text was predicted worse than by the base model: delta halved
    steps: int = 0
    sentences_learned: int = 0
    learn_ms: float = 0.0           # wall time of rounds: steps and gate evaluations
    step_ms: float = 0.0            # wall time of the engine steps alone
    last_step_ms: float | None = None
    last_loss: float | None = None
    last_heldout: float | None = None
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


def load_scheme(mode: str, schemes_dir: Path = SCHEMES_DIR) -> UpdateScheme:
    """The scheme a mode trains with: the searched sparse scheme shipped in models/schemes, or a built-in one."""
    path = Path(schemes_dir) / f"{mode}.json"
    if path.exists():
        return UpdateScheme.from_dict(json.loads(path.read_text()))
    return builtin_scheme(mode)


def is_held_out(sentence: str, every: int) -> bool:
    return zlib.crc32(sentence.encode("utf-8")) % every == 0


class Learner:
    """Trains a private copy of `model`; accepted rounds are handed to `publish` (parameter name -> new value), and the
    sentences they took in to `absorb` (with learning off, every sentence is); those of rolled-back rounds to `reject`.

    Thread-safe: every public method takes the learner's lock, so a round runs whole before a mode switch, a reset
    or a load takes effect.
    """

    def __init__(self, model: GPT, tokenizer: Tokenizer, general_text: list[str], config: LearnerConfig | None = None,
                 publish: Publish | None = None, schemes_dir: Path = SCHEMES_DIR, absorb: Absorb | None = None,
                 reject: Absorb | None = None):
        self.config = config or LearnerConfig()
        self.tokenizer = tokenizer
        self.publish = publish or (lambda tensors: None)
        self.absorb = absorb or (lambda sentences: None)
        self.reject = reject or (lambda sentences: None)
        self.schemes_dir = Path(schemes_dir)
        self.model = copy.deepcopy(model).eval()
        self.base = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        self.stats = LearnerStats()
        self.sentences: list[str] = []
        self.max_sentences = 20_000
        self._learned_upto = 0
        self._absorbed_upto = 0  # sentences before this one have been handed to `absorb` or turned down
        self._rejected: set[str] = set()  # sentences of rolled-back rounds: never replayed
        self._incoming: deque[str] = deque()  # finished sentences not yet taken in by a round
        self._requested_mode: str | None = None
        self._rng = random.Random(self.config.seed)
        self._lock = threading.RLock()
        self._plan: TrainPlan | None = None
        self._measured: dict[str, int] = {}
        self._moved: set[str] = set()  # parameters that may differ from the base model's
        self._general = self._general_rows(general_text)
        self._general_check = self._general[: self.config.general_rows]
        self._general_hidden: tuple[int, torch.Tensor] | None = None  # their states where the weights start to differ
        self._heldout_known: tuple[list[list[int]], list[float]] | None = None  # held-out rows, their losses now
        self._base_general = self._general_loss()
        self._rounds = 0
        self._judged: deque[tuple[float, float]] = deque(maxlen=self.config.judged_sentences)

    # --- data ------------------------------------------------------------------------------------------------
    def _general_rows(self, lines: list[str]) -> list[list[int]]:
        rows = [[BOS_ID, *self.tokenizer.encode(line)][: self.config.window + 1] for line in lines]
        return [row for row in rows if len(row) > self.config.scored]

    def _joined(self, first: int, stop: int) -> list[int]:
        """Tokens of sentences `first` .. `stop` - 1 joined (a start-of-text token in front of the very first)."""
        return ([BOS_ID] if first == 0 else []) + self.tokenizer.encode(" ".join(self.sentences[first:stop]))

    def _window(self, index: int) -> list[int]:
        """Tokens ending with sentence `index`, its predecessors in front, at most `window` + 1 of them."""
        return self._joined(max(0, index - self.config.context_sentences), index + 1)[-(self.config.window + 1):]

    def _covering_windows(self, index: int, scored: int) -> list[list[int]]:
        """Windows ending `scored` tokens apart through sentence `index`, so that a loss on each window's newest
        `scored` positions covers every token of the sentence once (at most `max_cover_rows` windows; none so short
        that it would cut the batch's rows below `scored` + 1 tokens, but the one ending the sentence)."""
        first = max(0, index - self.config.context_sentences)
        ids = self._joined(first, index + 1)
        own = max(1, len(ids) - len(self._joined(first, index)))
        ends = [end for end in range(len(ids), len(ids) - own, -scored) if end > scored or end == len(ids)]
        return [ids[:end][-(self.config.window + 1):] for end in ends[: self.config.max_cover_rows]]

    @staticmethod
    def _stack(rows: list[list[int]]) -> torch.Tensor:
        """Rows cut to a common length from the left (the newest tokens are the ones that count)."""
        length = min(len(row) for row in rows)
        return torch.tensor([row[len(row) - length:] for row in rows], dtype=torch.long)

    def _split(self) -> tuple[list[int], list[int]]:
        """Indices of the sentences to train on (not held out, not in a rolled-back round) and of held-out ones."""
        every = self.config.holdout_every
        held, train = [], []
        for i, sentence in enumerate(self.sentences):
            if is_held_out(sentence, every):
                held.append(i)
            elif sentence not in self._rejected:
                train.append(i)
        return train, held

    def _step_batch(self, train: list[int], fresh: list[int]) -> torch.Tensor:
        cfg = self.config
        older = [i for i in train if i < self._learned_upto]
        replay = self._rng.sample(older, max(0, min(len(older), cfg.batch - len(fresh))))
        scored = self._plan.scheme.loss_positions(self.config.window)
        rows = [row for i in fresh for row in self._covering_windows(i, scored)]
        rows += [self._window(i) for i in replay]
        rows += self._rng.sample(self._general, min(cfg.general, len(self._general)))
        return self._stack(rows)

    # --- scoring ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _row_losses(self, rows: list[list[int]], weights: dict[str, torch.Tensor] | None = None,
                    hidden: tuple[int, torch.Tensor] | None = None) -> list[float]:
        """Per row: mean next-token loss over its newest `scored` positions (with `weights`: those, not the model's;
        with `hidden` from `_hidden`: from the first block that differs from the base model on)."""
        if not rows:
            return []
        batch = self._stack(rows)
        inputs, kwargs = batch[:, :-1], {"last": self.config.scored, "hidden": hidden}
        logits = (self.model(inputs, **kwargs) if weights is None
                  else functional_call(self.model, weights, (inputs,), kwargs))
        targets = batch[:, 1:][:, -self.config.scored:]
        losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        return losses.view(len(rows), -1).mean(1).tolist()

    @torch.no_grad()
    def _hidden(self, rows: list[list[int]]) -> tuple[int, torch.Tensor]:
        """The rows' states at the first block the learning has changed: the same for the personal and the base
        model, so scoring both (or scoring again) runs only the blocks from there on."""
        first = self.model.first_block_changed_by(self._moved)
        return first, self.model.hidden_states(self._stack(rows)[:, :-1], first)

    def _general_loss(self) -> float:
        """Mean loss on the general-text check; the rows' states before the changed blocks are kept between checks."""
        first = self.model.first_block_changed_by(self._moved)
        if self._general_hidden is None or self._general_hidden[0] != first:
            self._general_hidden = self._hidden(self._general_check)
        losses = self._row_losses(self._general_check, hidden=self._general_hidden)
        return sum(losses) / len(losses) if losses else 0.0

    def _verdict(self, before: list[float], after: list[float]) -> str:
        """Why the round must roll back, or "" to keep it."""
        values = after + [p.sum().item() for p in self._plan.trainable.values()]
        if not all(map(math.isfinite, values)):
            return "non-finite"
        if before and statistics.fmean(a / b - 1 for a, b in zip(after, before)) > self.config.gate_tolerance:
            return "held-out loss rose"
        if self._rounds % self.config.general_every == 0:
            general = self._general_loss()
            self.stats.last_general = general
            if not math.isfinite(general) or general > self._base_general * (1 + self.config.general_tolerance):
                return "general text loss rose"
        return ""

    def _heldout_rows(self, held: list[int]) -> list[list[int]]:
        return [self._window(i) for i in held[-self.config.holdout_size:]]

    def _heldout_losses(self, plan: TrainPlan, rows: list[list[int]]) -> list[float]:
        return plan.evaluate_rows(self._stack(rows)) if rows else []

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
            self._learned_upto = max(0, self._learned_upto - drop)
            self._absorbed_upto = max(0, self._absorbed_upto - drop)
            self._rejected &= set(self.sentences)  # bounded with the sentences it refers to
        mode, self._requested_mode = self._requested_mode, None
        if mode is not None and mode != self.config.mode:
            self._close_plan()
            self._settle(accept=True)  # no round will judge what the old mode had not learned yet
            self.config.mode = mode
            self._learned_upto = len(self.sentences)

    def pending(self) -> int:
        """Finished sentences not learned from yet (with learning off, not yet taken in); a hint, read without the lock."""
        if self.mode == "off":
            return len(self._incoming)
        return len(self._incoming) + len(self.sentences) - self._learned_upto

    def run_round(self) -> RoundResult | None:
        """Learn from the newest sentences (with replay) for up to `steps_per_round` steps, then gate the result.

        None when there is nothing new to learn from (or learning is off).
        """
        with self._lock:
            self._sync()
            train, held = self._split()
            pending = [i for i in train if i >= self._learned_upto]
            fresh = pending[-self.config.newest:]
            if self.config.mode == "off" or not fresh:
                self._learned_upto = len(self.sentences)
                self._settle(accept=True)  # learning off, or held-out sentences only: no round judges them
                return None
            start = time.perf_counter()
            self._judge_new_text(fresh)
            plan = self._ensure_plan()
            held = [i for i in held if i < pending[0]]  # judged on text from before the round's own
            rows = self._heldout_rows(held)
            known = self._heldout_known  # the last round's verdict scored these weights, often on the same rows
            before = known[1] if known is not None and known[0] == rows else self._heldout_losses(plan, rows)
            snapshot = plan.delta()
            steps = 0
            while steps < self.config.steps_per_round:
                batch = self._step_batch(train, fresh)
                report = plan.step(batch)
                steps += 1
                self.stats.step_ms += report.step_ms
                self.stats.last_step_ms = report.step_ms
                self.stats.last_loss = report.loss
                if (time.perf_counter() - start) * 1000 > self.config.budget_ms:
                    break
            after = self._heldout_losses(plan, rows)
            self._rounds += 1
            reason = self._verdict(before, after)
            self._learned_upto = len(self.sentences)
            self.stats.steps += steps
            self.stats.training_bytes = plan.memory().training_bytes
            self._heldout_known = (rows, before if reason else after)
            if reason:
                plan.load_delta(snapshot)
                self.stats.rounds_rolled_back += 1
                self._rejected.update(self.sentences[i] for i in pending)
                self._settle(accept=False)
            else:
                self.stats.rounds_accepted += 1
                self.stats.sentences_learned += len(fresh)
                self.stats.last_heldout = sum(after) / len(after) if after else None
                self.publish(self._touched())
                self._settle(accept=True)
            ms = (time.perf_counter() - start) * 1000
            self.stats.learn_ms += ms
            return RoundResult(not reason, steps, ms, reason)

    def _settle(self, accept: bool) -> None:
        """Every sentence taken in so far is decided: handed to `absorb` if `accept`, else to `reject`."""
        if self._absorbed_upto < len(self.sentences):
            (self.absorb if accept else self.reject)(self.sentences[self._absorbed_upto:])
        self._absorbed_upto = len(self.sentences)

    def _judge_new_text(self, fresh: list[int]) -> None:
        """Test, then train: how the personal and the base model predict sentences no round has trained on yet.

        When over the last `judged_sentences` new sentences the personal model did worse than the base model, it
        has learned what does not carry over to new text (held-out sentences of the same posts can miss this):
        its delta is halved, and the count starts again.
        """
        rows = [self._window(i) for i in fresh]
        hidden = self._hidden(rows)
        self._judged.extend(zip(self._row_losses(rows, hidden=hidden), self._row_losses(rows, self.base, hidden)))
        if len(self._judged) < self._judged.maxlen:
            return
        personal, base = (statistics.fmean(column) for column in zip(*self._judged))
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
            scheme = load_scheme(self.config.mode, self.schemes_dir)
            # no momentum: a round's change comes from its own batches only, so the gate judges what it learned
            optimizer = OptimizerConfig(lr=self.config.lr[self.config.mode], beta1=0.0)
            self._plan = compile_plan(staged_lm(self.model), scheme, optimizer,
                                      cache_bytes=int(self.config.prefix_cache_mb * 2**20))
            self._moved |= self._plan_names()
        return self._plan

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
        self._heldout_known = self._general_hidden = None
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
        if mode not in MODES:
            raise ValueError(f"unknown update mode {mode!r}; modes: {', '.join(MODES)}")
        self._requested_mode = mode
        if self._lock.acquire(blocking=False):
            try:
                self._sync()
            finally:
                self._lock.release()

    def deltas(self) -> dict[str, torch.Tensor]:
        """The personal model: current weights minus base, for every parameter that differs."""
        with self._lock:
            return {name: (p.detach() - self.base[name]).clone() for name, p in self.model.named_parameters()
                    if not torch.equal(p, self.base[name])}

    @torch.no_grad()
    def load_deltas(self, deltas: dict[str, torch.Tensor], sentences: list[str], rejected: set[str] = frozenset()
                    ) -> None:
        """Weights = base + `deltas` (missing names: base); `sentences` are the history already learned from, but
        those in `rejected` (turned down by earlier rounds), which are never replayed."""
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
            self.publish({name: p.detach().clone() for name, p in self.model.named_parameters()})

    def replace_sentences(self, sentences: list[str]) -> None:
        """The history changed under us (forget): learn on from what is left."""
        with self._lock:
            self._sync()
            self._incoming.clear()
            self.sentences = list(sentences)
            self._learned_upto = min(self._learned_upto, len(self.sentences))
            self._absorbed_upto = len(self.sentences)  # the caller counts what is left afresh
            self._rejected &= set(self.sentences)

    def heldout_loss(self, among_first: int | None = None) -> float | None:
        """Mean loss on the newest held-out sentences (of the first `among_first` sentences) as the weights stand."""
        with self._lock:
            self._sync()
            _, held = self._split()
            held = [i for i in held if among_first is None or i < among_first]
            losses = self._row_losses([self._window(i) for i in held[-self.config.holdout_size:]])
            return sum(losses) / len(losses) if losses else None

    def measure_training_bytes(self, mode: str) -> int:
        """Training memory of `mode`'s plan, measured on one step of a learner-sized batch on a copy of the base.

        Memoised per mode; 0 for "off". What the gauges show beside the running plan's own measurement.
        """
        if mode == "off":
            return 0
        if mode not in self._measured:
            model = copy.deepcopy(self.model)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(self.base[name])
            rows = self._general[: self.config.batch + self.config.general]
            optimizer = OptimizerConfig(lr=0.0, beta1=0.0)
            with compile_plan(staged_lm(model), load_scheme(mode, self.schemes_dir), optimizer) as plan:
                plan.step(self._stack(rows))
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
