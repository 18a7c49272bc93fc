"""Contribution analysis: each candidate part of a model fine-tuned alone on users' earlier text, and its gain.

The gain is measured on the same users' later text; each candidate's planned training memory goes with it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from engine.optimizer import OptimizerConfig
from engine.plan import compile_plan
from engine.scheme import PartRule, UpdateScheme
from engine.staged import StagedModel

ModelFactory = Callable[[], StagedModel]


@dataclass(frozen=True)
class UserText:
    """One user's tokens in time order: `earlier` to train on, `later` to measure on (1-D token id tensors)."""

    name: str
    earlier: torch.Tensor
    later: torch.Tensor


@dataclass(frozen=True)
class AnalysisConfig:
    tensor_kinds: tuple[str, ...] = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    channel_ratios: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    head_modules: tuple[str, ...] = ("ln_f",)    # trained with the biases, by depth
    steps: int = 20
    batch_rows: int = 8
    sequence_length: int = 64
    eval_windows: int = 16
    loss_last_fraction: float = 0.25
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-3))
    seed: int = 0


@dataclass(frozen=True)
class Candidate:
    """One part that may train. Candidates of one `group` exclude each other (one channel ratio per tensor)."""

    name: str
    group: str
    rules: tuple[PartRule, ...]


@dataclass(frozen=True)
class Contribution:
    candidate: Candidate
    gain: float             # mean drop of the later text's loss, nats per token, over users
    training_bytes: int     # planned saved activations + gradients + optimizer state, trained alone

    def to_dict(self) -> dict:
        return {"name": self.candidate.name, "group": self.candidate.group, "gain": self.gain,
                "training_bytes": self.training_bytes, "rules": [asdict(r) for r in self.candidate.rules]}


def candidates(n_blocks: int, config: AnalysisConfig) -> list[Candidate]:
    """Block x tensor kind x channel ratio, and the biases (with normalization vectors) of the last d blocks."""
    found = []
    for block in range(n_blocks):
        relative = str(block - n_blocks)
        for kind in config.tensor_kinds:
            for ratio in config.channel_ratios:
                found.append(Candidate(f"blocks[{relative}].{kind} {ratio:g} of channels", f"blocks[{relative}].{kind}",
                                       (PartRule((kind,), blocks=relative, weight=ratio),)))
    for depth in range(1, n_blocks + 1):
        rules = (PartRule(blocks=f"-{depth}:", bias=True),)
        if config.head_modules:
            rules += (PartRule(config.head_modules, bias=True),)
        found.append(Candidate(f"biases of the last {depth} block(s)", "biases", rules))
    return found


def scheme_of(name: str, chosen: list[Candidate], config: AnalysisConfig) -> UpdateScheme:
    return UpdateScheme(name, tuple(rule for c in chosen for rule in c.rules),
                        loss_last_fraction=config.loss_last_fraction)


def windows(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Non-overlapping rows of `length` + 1 tokens (inputs and next-token targets)."""
    count = (len(tokens) - 1) // length
    return torch.stack([tokens[i * length:(i + 1) * length + 1] for i in range(count)])


def _training_batches(tokens: torch.Tensor, config: AnalysisConfig) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(config.seed)
    length = config.sequence_length + 1
    starts = torch.randint(0, len(tokens) - length + 1, (config.steps, config.batch_rows), generator=generator)
    return [torch.stack([tokens[s:s + length] for s in row.tolist()]) for row in starts]


@torch.no_grad()
def text_loss(staged: StagedModel, rows: torch.Tensor) -> float:
    inputs, targets = staged.split_batch(rows)
    return staged.loss(staged.forward(inputs), targets).item()


def planned_training_bytes(staged: StagedModel, scheme: UpdateScheme, batch: torch.Tensor) -> int:
    """Planned training memory of `scheme` on `batch`: saved activations + gradients + optimizer state."""
    with compile_plan(staged, scheme) as plan:
        memory = plan.memory(batch)
        return memory.planned_saved_bytes + memory.gradient_bytes + memory.optimizer_bytes


class ContributionAnalysis:
    """Gains of candidates fine-tuned alone, each on a fresh model from `factory`, averaged over `users`."""

    def __init__(self, factory: ModelFactory, users: list[UserText], config: AnalysisConfig):
        for user in users:
            if len(user.earlier) <= config.sequence_length + 1 or len(user.later) <= config.sequence_length + 1:
                raise ValueError(f"user {user.name}: too little text for windows of {config.sequence_length}")
        self.factory, self.users, self.config = factory, users, config
        self._batches = [_training_batches(u.earlier, config) for u in users]
        self._later = [windows(u.later, config.sequence_length)[:config.eval_windows] for u in users]
        self._before = [text_loss(factory(), rows) for rows in self._later]
        self._memory_model = factory()

    def gain(self, scheme: UpdateScheme) -> float:
        gains = []
        for batches, later, before in zip(self._batches, self._later, self._before):
            staged = self.factory()
            with compile_plan(staged, scheme, self.config.optimizer) as plan:
                for batch in batches:
                    plan.step(batch)
            gains.append(before - text_loss(staged, later))
        return sum(gains) / len(gains)

    def training_bytes(self, chosen: list[Candidate]) -> int:
        """Planned training memory of the candidates trained together, on a batch of the analysis' shape."""
        scheme = scheme_of("candidates", chosen, self.config)
        return planned_training_bytes(self._memory_model, scheme, self._batches[0][0])

    def run(self, progress: Callable[[int, int, str], None] | None = None) -> list[Contribution]:
        found = candidates(len(self._memory_model.block_paths), self.config)
        table = []
        for i, candidate in enumerate(found):
            if progress:
                progress(i, len(found), candidate.name)
            scheme = scheme_of(candidate.name, [candidate], self.config)
            table.append(Contribution(candidate, self.gain(scheme), self.training_bytes([candidate])))
        return table
