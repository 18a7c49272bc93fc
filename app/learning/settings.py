"""What the learner is told and what it tells: its config (segments, windows, the guard's thresholds), its running
statistics (the gauges read them), and each round's result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.learning.modes import mode as mode_settings
from engine.optimizer import OptimizerConfig


@dataclass
class LearnerConfig:
    mode: str = "sparse"
    segment: int = 8                # tokens per training step (a sentence is cut into near-equal segments of at most this)
    context: int = 120              # tokens of earlier text in front of a segment (segment + context <= block size)
    context_keep: int = 64          # when the next segment would not fit, the window drops all but this many tokens:
                                    # it moves in jumps, so between them a step extends the remembered context (dev
                                    # users 21-23: from 96, the context's cost per segment fell from 5.4 to 2.2 ms and
                                    # the base model's scores' from 6.3 to 4.3, last-quarter gain kept, +0.061 nats)
    context_sentences: int = 8      # earlier sentences the context is taken from
    budget_ms: float = 400.0        # a round stops taking sentences once it has run this long (the rest wait)
    garbage_share: float = 0.5      # a round whose words are mostly unknown (to the vocabulary and to the user) ...
    garbage_words: int = 12         # ... and that has at least this many words is garbage: not learned
    divergence_nats: float = 1.0    # a step that makes its own segment this much worse has diverged: roll back
    judged_segments: int = 32       # segments, each scored before it is learned, that decide a pull-back ...
    judge_every: int = 8            # ... one in this many also scored by the base model (a forward pass): the
                                    # decision spans the last 256 segments, as 64 of one in 4 did, at half the cost
    base_tolerance: float = 0.01    # their loss may exceed the base model's by this share before the delta halves
    general_tolerance: float = 0.08  # rise of general-text loss over the base model's that rolls a round back
    general_rows: int = 8           # passages of the base model's text the general check scores (the same ones every
                                    # time, so the comparison is paired: 128 positions; 16 cost 3.5-4 ms per segment)
    general_every: int = 16         # rounds between general checks (they run the blocks learning changed)
    general_scored: int = 16        # newest positions of each passage the general check scores
    typed_rows_only: bool = True    # a tied embedding learns only the rows of tokens the user typed: the output rows of
                                    # the rest stay the base model's. It limits a scheme that learns through the output
                                    # projection (`output`); `sparse` learns through the lookup, whose gradient touches
                                    # only the rows looked up, typed tokens already
    lr: dict[str, float] = field(default_factory=dict)     # per mode, overriding the registry's (tuning)
    decay: dict[str, float] = field(default_factory=dict)  # per mode, overriding the registry's (tuning)
    keep_scores: bool = False       # keep every segment's (tokens, personal nats, row): the benchmarks read them, the
                                    # base model's score added afterwards (`Learner.scored`), so they time what the app pays

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
    training_bytes: int | None = None  # measured by the running plan on its last step: activations + grads + optimizer
    training_mode: str | None = None   # ... of this mode
    parts_ms: dict[str, float] = field(default_factory=dict)  # wall time of rounds by part (`costs.COST_PARTS`)

    def count_step(self, ms: float, loss: float) -> None:
        self.steps += 1
        self.step_ms += ms
        self.last_step_ms, self.last_loss = ms, loss

    def counters(self) -> dict[str, int]:
        return {"rounds_accepted": self.rounds_accepted, "rounds_rolled_back": self.rounds_rolled_back,
                "steps": self.steps, "sentences_learned": self.sentences_learned}


@dataclass(frozen=True)
class RoundResult:
    accepted: bool
    steps: int
    ms: float
    reason: str = ""
