"""`pocketkb bench learning`: prequential (test-then-train) nats/token of each update mode on users' streams.

Each user's sentences go through the learner in date order, as typed; every segment is scored by the personal and
the base model before any update that saw it. Reported whole-stream and on the last quarter, paired over users.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from app.learning.judge import SegmentScore, per_token
from app.learning.learner import Learner
from app.learning.costs import COST_PARTS
from app.learning.settings import LearnerConfig
from app.bench.texts import EvalText
from app.bench.paired import paired_gain
from app.typing.sentences import finished_sentences
from models import GENERAL_REPLAY_PATH, TOKENIZER_PATH
from models.checkpoint import load_model, weights_sha256
from models.general_replay import load as load_general
from models.gpt import GPT
from models.grad_stats import GRAD_STATS_FILE, GradStats, load_grad_stats
from models.tokenizer import Tokenizer

TAIL = 0.25  # the last quarter of each stream's tokens: where learning should show


@dataclass
class LearningResult:
    user: str
    mode: str
    tokens: int
    base: float            # nats/token of the base model, whole stream
    personal: float        # of the personal model, each segment scored before it was learned
    base_tail: float       # the same on the last quarter
    personal_tail: float
    rounds_rolled_back: int
    pullbacks: int
    steps: int
    learn_seconds: float
    parts_ms: dict[str, float] = field(default_factory=dict)  # the learner's time by part (`COST_PARTS`)

    @property
    def gain(self) -> float:
        return self.base - self.personal

    @property
    def gain_tail(self) -> float:
        return self.base_tail - self.personal_tail

    def to_dict(self) -> dict:
        return {**asdict(self), "gain": self.gain, "gain_tail": self.gain_tail}


def tail_of(scores: list[SegmentScore], share: float = TAIL) -> list[SegmentScore]:
    """The segments holding the last `share` of the stream's tokens."""
    total, kept, seen = sum(s.tokens for s in scores), [], 0
    for score in reversed(scores):
        if seen >= total * share:
            break
        kept.append(score)
        seen += score.tokens
    return kept[::-1]


def learn_stream(model: GPT, tokenizer: Tokenizer, general: list[str], grad_stats: GradStats, item: EvalText,
                 mode: str, overrides: dict | None = None) -> LearningResult:
    """Type the user's sentences through a learner in `mode`, one round per sentence, and score the stream."""
    sentences, _ = finished_sentences(item.text + "\n", 0)
    config = LearnerConfig(mode=mode, keep_scores=True, budget_ms=float("inf"), **(overrides or {}))
    learner = Learner(model, tokenizer, general, config, grad_stats=grad_stats)
    start = time.perf_counter()
    for sentence in sentences:
        learner.add(sentence)
        learner.run_round()
    seconds = time.perf_counter() - start
    scores = learner.scored()  # the base model's scores the guard did not take, outside the timed rounds
    learner.close()
    tail, stats = tail_of(scores), learner.stats
    return LearningResult(item.name, mode, sum(s.tokens for s in scores), per_token(scores, "base"),
                          per_token(scores, "personal"), per_token(tail, "base"), per_token(tail, "personal"),
                          stats.rounds_rolled_back, stats.pullbacks, stats.steps, seconds, dict(stats.parts_ms))


def format_row(r: LearningResult) -> str:
    return (f"{r.user:>10} {r.mode:<11} {r.tokens:>6} {r.base:>7.4f} {r.personal:>8.4f} {r.gain:>+8.4f} "
            f"{r.base_tail:>7.4f} {r.personal_tail:>8.4f} {r.gain_tail:>+8.4f} {r.rounds_rolled_back:>6} "
            f"{r.pullbacks:>6} {r.learn_seconds:>8.1f}")


HEADER = (f"{'user':>10} {'mode':<11} {'tokens':>6} {'base':>7} {'personal':>8} {'gain':>8} {'base-q4':>7} "
          f"{'pers-q4':>8} {'gain-q4':>8} {'rolled':>6} {'pulled':>6} {'learn s':>8}")


def summary(results: list[LearningResult]) -> list[str]:
    """Per mode: the paired gain over the base model, whole stream and last quarter; then sparse's share of full's."""
    lines, tails = [], {}
    for mode in dict.fromkeys(r.mode for r in results):
        mine = [r for r in results if r.mode == mode]
        whole, tail = paired_gain([r.gain for r in mine]), paired_gain([r.gain_tail for r in mine])
        tails[mode] = tail.mean
        seconds = sum(r.learn_seconds for r in mine) / sum(r.tokens for r in mine) * 1000
        lines.append(f"{mode}: whole stream {whole.line('nats/token')}")
        lines.append(f"{mode}: last quarter {tail.line('nats/token')}; learning {seconds:.2f} ms per token")
        lines.append(f"{mode}: {cost_line(mine)}")
    if "sparse" in tails and tails.get("full", 0) > 0:
        lines.append(f"sparse reaches {tails['sparse'] / tails['full']:.0%} of full's last-quarter gain")
    return lines


def segment_costs(results: list[LearningResult]) -> dict[str, float]:
    """The learner's time per segment (one training step), by part (`COST_PARTS`), over `results`."""
    steps = sum(r.steps for r in results)
    return {p: sum(r.parts_ms.get(p, 0.0) for r in results) / max(steps, 1) for p in COST_PARTS}


def cost_line(results: list[LearningResult]) -> str:
    parts = segment_costs(results)
    return (f"{sum(parts.values()):.2f} ms per segment: "
            + ", ".join(f"{part} {ms:.2f}" for part, ms in parts.items()))


def frontier_points(results: list[LearningResult]) -> dict[str, tuple[float, float]]:
    """Per mode: (ms per segment, mean last-quarter gain in nats/token): the frontier of gain against cost."""
    points = {}
    for mode in dict.fromkeys(r.mode for r in results):
        mine = [r for r in results if r.mode == mode]
        points[mode] = (sum(segment_costs(mine).values()), sum(r.gain_tail for r in mine) / len(mine))
    return points


def _learn_job(job: tuple[str, EvalText, str, dict]) -> LearningResult:
    model_dir, item, mode, overrides = job
    torch.set_num_threads(1)
    model = load_model(model_dir)
    stats = load_grad_stats(Path(model_dir) / GRAD_STATS_FILE, weights_sha256(model_dir))
    return learn_stream(model, Tokenizer(TOKENIZER_PATH), load_general(GENERAL_REPLAY_PATH), stats, item, mode,
                        overrides)


def run_learning(model_dir: str, texts: list[EvalText], modes: list[str], overrides: dict, processes: int,
                 progress: Callable[[LearningResult], None]) -> list[LearningResult]:
    """Every (mode, user) stream, `processes` at a time; results in that order."""
    load_grad_stats(Path(model_dir) / GRAD_STATS_FILE, weights_sha256(model_dir))  # refuse a mismatch up front
    jobs = [(str(model_dir), item, mode, overrides) for mode in modes for item in texts]
    with mp.get_context("spawn").Pool(processes) as pool:
        results = []
        for result in pool.imap(_learn_job, jobs):
            progress(result)
            results.append(result)
    return results
