"""Contribution analysis: each candidate part of a model learned alone, test-then-train, on users' streams.

A candidate's gain is what its personal model saves on each segment before learning it, against the base model
(prequential nats/token); its training memory, measured by one step of a segment, goes with it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch

from engine.dyneval import ModelReference
from engine.optimizer import OptimizerConfig
from engine.plan import compile_plan
from engine.scheme import PartRule, UpdateScheme
from engine.segments import Windowing, rows_after
from engine.staged import StagedModel, TensorLayout

ModelFactory = Callable[[], StagedModel]
Row = tuple[list[int], int]  # tokens, and how many newest of them are the segment's


Progress = Callable[[str, int, int, str], None]  # (phase, done, total or 0 when unknown, what now)


@dataclass(frozen=True)
class UserText:
    """One user's tokens in time order (a 1-D token id tensor)."""

    name: str
    tokens: torch.Tensor


@dataclass(frozen=True)
class AnalysisConfig:
    channel_ratios: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    lr_scales: tuple[float, ...] = (1.0, 10.0)   # each candidate at each multiple of the mode's learning rate
    windowing: Windowing = field(default_factory=Windowing)
    tokens: int = 2400                           # of each user's stream, learned segment by segment
    loss_last_fraction: float = 0.25
    remember_context: bool = True
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(kind="dyneval", lr=3e-6))


@dataclass(frozen=True)
class Candidate:
    """One part that may train. Candidates of one `group` exclude each other (one channel ratio per tensor)."""

    name: str
    group: str
    rules: tuple[PartRule, ...]


@dataclass(frozen=True)
class Contribution:
    candidate: Candidate
    gain: float             # mean prequential gain over the base model, nats per token, over users
    training_bytes: int     # measured saved activations + gradients + optimizer state, learned alone

    def to_dict(self) -> dict:
        return {"name": self.candidate.name, "group": self.candidate.group, "gain": self.gain,
                "training_bytes": self.training_bytes, "rules": [asdict(r) for r in self.candidate.rules]}


def candidates(layout: TensorLayout, n_blocks: int, config: AnalysisConfig) -> list[Candidate]:
    """Block x tensor of `layout.block_tensors` x channel ratio, the biases (with normalization vectors and the
    `layout.head_modules`) of the last d blocks, and the embedding matrix through each module of `layout.embedding`
    (a tied matrix: both uses, or the output's alone); each at every learning-rate scale of `config.lr_scales`."""
    parts = []
    for block in range(n_blocks):
        relative = str(block - n_blocks)
        for kind in layout.block_tensors:
            for ratio in config.channel_ratios:
                parts.append((f"blocks[{relative}].{kind} {ratio:g} of channels", f"blocks[{relative}].{kind}",
                              (PartRule((kind,), blocks=relative, weight=ratio),)))
    for depth in range(1, n_blocks + 1):
        rules = (PartRule(blocks=f"-{depth}:", bias=True),)
        if layout.head_modules:
            rules += (PartRule(layout.head_modules, bias=True),)
        parts.append((f"biases of the last {depth} block(s)", "biases", rules))
    for module in layout.embedding:
        parts.append((f"the embedding matrix through {module}", "embedding", (PartRule((module,), weight=1.0),)))
    return [Candidate(name if scale == 1 else f"{name}, {scale:g}x lr", group,
                      tuple(replace(rule, lr_scale=scale) for rule in rules))
            for name, group, rules in parts for scale in config.lr_scales]


def scheme_of(name: str, chosen: list[Candidate], config: AnalysisConfig, description: str = "") -> UpdateScheme:
    return UpdateScheme(name, tuple(rule for c in chosen for rule in c.rules), config.loss_last_fraction,
                        description, remember_context=config.remember_context)


def stream_rows(tokens: torch.Tensor, config: AnalysisConfig) -> list[Row]:
    """The first `config.tokens` of a stream as test-then-train rows (the first token is only context)."""
    ids = tokens[:config.tokens].tolist()
    return rows_after(ids[:1], ids[1:], config.windowing)


@torch.no_grad()
def segment_losses(staged: StagedModel, rows: list[Row]) -> list[float]:
    """Each row's summed loss over its segment, by the model as it is."""
    out = []
    for row, n in rows:
        inputs, targets = staged.split_batch(torch.tensor([row]))
        out.append(staged.loss(staged.forward(inputs)[:, -n:], targets[:, -n:]).item() * n)
    return out


class ContributionAnalysis:
    """Gains of candidates learned alone, each on a fresh model from `factory`, averaged over `users`.

    `reference` (the base weights and their gradient statistics) is what a dynamic-evaluation optimizer needs.
    """

    def __init__(self, factory: ModelFactory, users: list[UserText], config: AnalysisConfig,
                 reference: ModelReference | None = None):
        self.factory, self.config, self.reference = factory, config, reference
        self._rows = [stream_rows(u.tokens, config) for u in users]
        for user, rows in zip(users, self._rows):
            if len(rows) < 2:
                raise ValueError(f"user {user.name}: too little text for test-then-train segments")
        base = factory()
        self._base = [sum(segment_losses(base, rows)) for rows in self._rows]
        self._tokens = [sum(n for _, n in rows) for rows in self._rows]
        self._memory_model = factory()
        self._memory_row = max(self._rows[0], key=lambda r: len(r[0]))

    def gain(self, scheme: UpdateScheme) -> float:
        """Mean over users of base minus personal nats/token, each segment scored by the step that learns it
        (before its update); a diverging candidate gains minus infinity."""
        gains = []
        for rows, base, tokens in zip(self._rows, self._base, self._tokens):
            with compile_plan(self.factory(), scheme, self.config.optimizer, reference=self.reference) as plan:
                personal = sum(plan.step(torch.tensor([row]), positions=n).loss * n for row, n in rows)
            gains.append((base - personal) / tokens)
        mean = sum(gains) / len(gains)
        return mean if math.isfinite(mean) else -math.inf

    def training_bytes(self, chosen: list[Candidate]) -> int:
        """Training memory of the candidates learned together, measured by one step of the longest segment row:
        saved activations + gradients + optimizer state."""
        scheme = scheme_of("candidates", chosen, self.config)
        row, n = self._memory_row
        with compile_plan(self._memory_model, scheme, self.config.optimizer, reference=self.reference) as plan:
            plan.step(torch.tensor([row]), positions=n)
            return plan.memory().training_bytes

    def run(self, progress: Progress | None = None) -> list[Contribution]:
        found = candidates(self._memory_model.layout, len(self._memory_model.block_paths), self.config)
        table = []
        for i, candidate in enumerate(found):
            if progress:
                progress("contribution analysis", i, len(found), candidate.name)
            scheme = scheme_of(candidate.name, [candidate], self.config)
            table.append(Contribution(candidate, self.gain(scheme), self.training_bytes([candidate])))
        return table
