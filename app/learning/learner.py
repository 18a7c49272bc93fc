"""The learner: dynamic evaluation while the user types. Committed text → learner → plan step → guard → publish:
the sentences (`SentenceStream`) are cut into segments of at most 8 tokens; each is scored (test), then trained on
with one step of its mode's update rule through the engine's plan (then train); the `Judge` keeps or rolls back the
round, and kept weights are published to the predictor.

A round (the sentences that arrived together) rolls back whole if its text is garbage or a step diverged; when new
text is predicted worse than by the base model, the personal delta is halved.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from app.learning.costs import PartClock
from app.learning.judge import Judge, SegmentScore, stack_rows
from app.learning.modes import mode as mode_settings
from app.learning.plans import Plans
from app.learning.settings import LearnerConfig, LearnerStats, RoundResult
from app.learning.stream import Absorb, SentenceStream
from engine.dyneval import ModelReference
from engine.plan import TrainPlan
from models import SCHEMES_DIR
from models.gpt import GPT
from models.grad_stats import GradStats
from models.tokenizer import Tokenizer

Publish = Callable[[dict[str, torch.Tensor]], None]


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
        self.tokenizer = tokenizer
        self.publish = publish or (lambda tensors: None)
        self.stream = SentenceStream(tokenizer, self.config, absorb or (lambda sentences: None),
                                     reject or (lambda sentences: None))
        self.model = copy.deepcopy(model).eval()
        self.base = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        self.reference = None if grad_stats is None else ModelReference(self.base, grad_stats.all_factors())
        self.judge = Judge(self.model, self.base, tokenizer, general_text, self.config, known)
        self.stats = LearnerStats()
        self.clock = PartClock(self.stats.parts_ms)
        self.scores: list[SegmentScore] = []
        self._requested_mode: str | None = None
        self._lock = threading.RLock()
        self.plans = Plans(self.model, self.base, self.reference, self.config, schemes_dir, self.judge)
        self._rounds = 0

    @property
    def sentences(self) -> list[str]:
        return self.stream.sentences

    def add(self, sentence: str) -> None:
        """A finished sentence to learn from. Never waits for a running round: it joins at the next one."""
        self.stream.add(sentence)

    def _sync(self) -> None:
        """Under the lock: take in the sentences and the mode switch that arrived meanwhile."""
        self.stream.take_incoming()
        requested, self._requested_mode = self._requested_mode, None
        if requested is not None and requested != self.config.mode:
            self.plans.close()
            self.config.mode = requested
            if requested == "off":  # what was waiting goes to the word statistics unlearned
                self.stream.skip_all()

    def pending(self) -> int:
        """Finished sentences not learned from yet (with learning off, not yet taken in); a hint, read without the lock."""
        if self.mode == "off":
            return len(self.stream.incoming)
        return self.stream.unlearned()

    def run_round(self) -> RoundResult | None:
        """Test, then train, segment by segment, on the sentences not learned yet (as many as the time budget
        allows; the rest wait for the next round); then keep or roll back the round. None when there is nothing new
        (or learning is off)."""
        with self._lock:
            self._sync()
            stream, first = self.stream, self.stream.learned_upto
            if self.config.mode == "off" or first >= len(stream.sentences):
                stream.skip_all()
                return None
            self.clock.start_round()
            plan = self.plans.ensure()
            snapshot = self.clock.timed("snapshot", plan.snapshot)
            ids = stream.window_before(first)
            scores, rows = [], []
            stop = first
            while stop < len(stream.sentences) and (stop == first or self.clock.round_ms() < self.config.budget_ms):
                for row, n in stream.segments(ids, stream.sentences[stop]):
                    scores.append(self._learn_segment(plan, row, n))
                    rows.append((row, n))
                    ids = row
                stop += 1
            stream.window, stream.window_upto = ids, stop
            general_ms = self.judge.general_ms
            reason, general = self.clock.timed("checks", self.judge.verdict, stream.sentences[first:stop], plan,
                                          (*rows[-1], scores[-1].personal),
                                          check_general=self._rounds % self.config.general_every == 0)
            self.clock.move("checks", "general", self.judge.general_ms - general_ms)
            if general is not None:
                self.stats.last_general = general
            self._rounds += 1
            stream.learned_upto = stop
            self.stats.training_bytes, self.stats.training_mode = plan.memory().training_bytes, self.config.mode
            if reason:
                plan.restore(snapshot)
                # the weights the round tried were never published: its text was seen with those it started from
                scores = [replace(s, personal=self.judge.losses([row], n)[0]) for s, (row, n) in zip(scores, rows)]
                self.stats.rounds_rolled_back += 1
                stream.rejected.update(stream.sentences[first:stop])
                stream.settle(accept=False)
            else:
                self.stats.rounds_accepted += 1
                self.stats.sentences_learned += stop - first
                self.stats.tokens_learned += sum(s.tokens for s in scores)
                self.judge.judged.extend(s for s in scores if s.base is not None)
                self.clock.timed("publish", lambda: self.publish(self.plans.touched()))
                stream.settle(accept=True)
                self._pull_back_if_worse()
            if self.config.keep_scores:  # every segment, scored before any update that saw it
                self.scores.extend(scores)
            ms = self.clock.end_round()
            self.stats.learn_ms += ms
            return RoundResult(not reason, len(scores), ms, reason)

    def scored(self) -> list[SegmentScore]:
        """Every segment kept (`keep_scores`), with the base model's score where the guard did not take one: the
        base weights never change, so a score taken now is the one it would have been then."""
        with self._lock:
            return [s if s.base is not None else replace(s, base=self.judge.base_loss(list(s.row), s.tokens))
                    for s in self.scores]

    def _learn_segment(self, plan: TrainPlan, row: list[int], n: int) -> SegmentScore:
        """One step on the segment; its loss, computed before the update, is the prequential score."""
        judged = self.stats.steps % self.config.judge_every == 0
        base = self.clock.timed("base", self.judge.base_loss, row, n) if judged else None
        self.plans.typed[row] = True
        context = plan.forward.memory_ms
        report = plan.step(stack_rows([row]), positions=n)
        self.clock.add("step", report.step_ms)
        self.clock.move("step", "context", plan.forward.memory_ms - context)
        self.stats.count_step(report.step_ms, report.loss)
        return SegmentScore(n, report.loss, base, tuple(row) if self.config.keep_scores else ())

    def _pull_back_if_worse(self) -> None:
        """When the personal model predicted new text worse than the base model (`Judge.worse_than_base`), its
        delta is halved (`Plans.pull_back`)."""
        if self.judge.worse_than_base():
            self.stats.pullbacks += 1
            self.publish(self.plans.pull_back())

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
        return bool(self.judge.moved)

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
            self.plans.close()
            self.judge.judged.clear()  # scores of the weights being replaced
            for name, p in self.model.named_parameters():
                p.copy_(self.base[name] + deltas[name] if name in deltas else self.base[name])
            self.judge.moved = set(deltas)
            self.stream.replace(sentences, set(rejected))  # the whole history now, all of it learned
            self.plans.retype(self.tokenizer, sentences)
            self.publish({name: p.detach().clone() for name, p in self.model.named_parameters()})

    def replace_sentences(self, sentences: list[str]) -> None:
        """The history changed under us (forget): learn on from what is left."""
        with self._lock:
            self._sync()
            self.stream.replace(sentences)

    def measure_training_bytes(self, mode: str) -> int:
        """Training memory of `mode`'s plan, measured once on a copy of the base (`Plans`)."""
        return self.plans.measure_training_bytes(mode, stack_rows(self.judge.general[:1]))

    def measured_training_bytes(self, mode: str) -> int | None:
        return self.plans.measured_training_bytes(mode)

    def held_tensors(self) -> list[torch.Tensor]:
        """The model tensors the learner holds: its copy of the model, the base weights, and what its plan adds
        (split weights, adapters, int8 copies)."""
        plan = self.plans.current
        model = [*self.model.parameters(), *self.model.buffers()] if plan is None else plan.held_tensors()
        return [*model, *self.base.values()]

    def close(self) -> None:
        with self._lock:
            self.plans.close()
