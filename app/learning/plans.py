"""The learner's engine plans: the plan of the current mode (compiled from the mode's scheme when first needed, closed
on a switch or when weights change outside it), and each mode's training memory, measured once for the gauges.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from app.learning.judge import Judge
from app.learning.modes import mode as mode_settings
from app.learning.settings import LearnerConfig
from engine.dyneval import ModelReference
from engine.plan import TrainPlan, compile_plan
from models.gpt import GPT
from models.tokenizer import BOS_ID

PREFIX_CACHE_BYTES = 1 << 20  # a segment's frozen-prefix output, reused by the check after its step


class Plans:
    def __init__(self, model: GPT, base: dict[str, torch.Tensor], reference: ModelReference | None,
                 config: LearnerConfig, schemes_dir: Path, judge: Judge):
        self.model, self.base, self.reference, self.config = model, base, reference, config
        self.schemes_dir, self.judge = Path(schemes_dir), judge
        self.current: TrainPlan | None = None
        self._measured: dict[str, int] = {}
        vocab = model.config.vocab_size
        self.typed = torch.zeros(vocab, dtype=torch.bool)  # the tokens the user typed (grown in place by the learner)

    def ensure(self) -> TrainPlan:
        """The plan of the configured mode; the parameters it trains count as moved from then on."""
        if self.current is None:
            self.current = self.compile(self.model, self.config.mode)
            self.judge.moved |= self.names()
            if self.config.typed_rows_only:
                for sink in self.current.factored.values():
                    if sink.shape[0] == len(self.typed):
                        sink.limit(self.typed)
        return self.current

    def retype(self, tokenizer, sentences: list[str]) -> None:
        """The tokens the user typed are those of `sentences` (a loaded or changed history), and the start-of-text
        token their stream begins with."""
        self.typed.zero_()
        self.typed[BOS_ID] = bool(sentences)
        for sentence in sentences:
            self.typed[tokenizer.encode(sentence)] = True

    def compile(self, model: GPT, mode: str) -> TrainPlan:
        optimizer = self.config.optimizer(mode)
        if optimizer.kind == "dyneval" and self.reference is None:
            raise ValueError(f"mode {mode!r} learns by dynamic evaluation, which needs the base model's gradient "
                             "statistics (run `pocketkb grad-stats`)")
        return compile_plan(model.staged(), mode_settings(mode).scheme(self.schemes_dir), optimizer,
                            cache_bytes=PREFIX_CACHE_BYTES, reference=self.reference)

    def names(self) -> set[str]:
        """The model parameters the current plan trains (an adapter: the weight it is merged into)."""
        params = dict(self.model.named_parameters())
        names = {name for name in self.current.trainable if name in params}
        return names | {f"{path}.weight" for path in self.current.adapters}

    def touched(self) -> dict[str, torch.Tensor]:
        """The model parameters the current plan trains, as they are now."""
        params = dict(self.model.named_parameters())
        return {name: params[name].detach().clone() for name in self.names()}

    @torch.no_grad()
    def pull_back(self) -> dict[str, torch.Tensor]:
        """Halve the personal delta: every parameter that moved goes half the way back to the base. The weights
        change outside the plan, so it closes (the next round builds a new one). Returns the new values."""
        self.close()
        moved = {name: p for name, p in self.model.named_parameters() if not torch.equal(p, self.base[name])}
        for name, p in moved.items():
            p.copy_(self.base[name] + 0.5 * (p - self.base[name]))
        return {name: p.detach().clone() for name, p in moved.items()}

    def close(self) -> None:
        """Also forgets what was scored under the plan (a plan may hold frozen weights as int8)."""
        self.judge.forget_states()
        if self.current is not None:
            self.current.close()
            self.current = None

    def measure_training_bytes(self, mode: str, row: torch.Tensor) -> int:
        """Training memory of `mode`'s plan, measured on one step of `row` on a copy of the base. Memoised per mode;
        0 for "off". What the gauges show beside the running plan's own measurement."""
        if mode == "off":
            return 0
        if mode not in self._measured:
            model = copy.deepcopy(self.model)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(self.base[name])
            with self.compile(model, mode) as plan:
                plan.step(row, positions=self.config.segment)
                self._measured[mode] = plan.memory().training_bytes
        return self._measured[mode]

    def measured_training_bytes(self, mode: str) -> int | None:
        """What `measure_training_bytes(mode)` found, if it has run (it takes a training step)."""
        return 0 if mode == "off" else self._measured.get(mode)
