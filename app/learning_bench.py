"""`pocketkb bench learning`: does learning a user's earlier sentences make their later text likelier?

Per user and mode, the first 75% of their sentences (date order) go through the learner one by one, as typed; the
base and the personal model then score the last 25% (nats per token, same windows). A fast proxy for `simulate`.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from app.learner import Learner, LearnerConfig
from app.loading import EvalText
from app.sentences import finished_sentences
from models.gpt import GPT
from models.tokenizer import BOS_ID, Tokenizer

LEARNED_SHARE = 0.75
WINDOW = 64  # tokens scored per forward pass, each with up to this many tokens of context before them


@dataclass
class LearningResult:
    user: str
    mode: str
    base_loss: float
    personal_loss: float
    rounds_accepted: int
    rounds_rolled_back: int
    pullbacks: int
    steps: int
    learn_seconds: float

    @property
    def gain(self) -> float:
        """Nats per token the personal model saves on the later text (negative: it got worse)."""
        return self.base_loss - self.personal_loss

    def to_dict(self) -> dict:
        return {**asdict(self), "gain": self.gain}


@torch.no_grad()
def text_loss(model: GPT, ids: list[int]) -> float:
    """Mean next-token loss over `ids`, WINDOW targets at a time, each pass with WINDOW tokens of context."""
    nats, count = 0.0, 0
    for start in range(0, len(ids) - 1, WINDOW):
        first = max(0, start - WINDOW)
        x = torch.tensor([ids[first:start + WINDOW + 1]])
        scored = x.shape[1] - 1 - (start - first)
        logits = model(x[:, :-1])[0, -scored:]
        nats += F.cross_entropy(logits.float(), x[0, 1:][-scored:], reduction="sum").item()
        count += scored
    return nats / max(count, 1)


def learn_and_score(model: GPT, tokenizer: Tokenizer, general: list[str], item: EvalText, mode: str,
                    overrides: dict | None = None) -> LearningResult:
    """Learn the user's earlier sentences one round each (inline), then score the later ones with both models."""
    sentences, _ = finished_sentences(item.text + "\n", 0)
    cut = int(len(sentences) * LEARNED_SHARE)
    served = copy.deepcopy(model)  # what the predictor would hold: updated only through `publish`
    params = dict(served.named_parameters())

    def publish(tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in tensors.items():
                params[name].copy_(value)

    learner = Learner(model, tokenizer, general, LearnerConfig(mode=mode, **(overrides or {})), publish=publish)
    start = time.perf_counter()
    for sentence in sentences[:cut]:
        learner.add(sentence)
        learner.run_round()
    seconds = time.perf_counter() - start
    learner.close()
    later = [BOS_ID] + tokenizer.encode(" ".join(sentences[cut:]))
    stats = learner.stats
    return LearningResult(item.name, mode, text_loss(model, later), text_loss(served, later), stats.rounds_accepted,
                          stats.rounds_rolled_back, stats.pullbacks, stats.steps, seconds)


def format_results(results: list[LearningResult]) -> list[str]:
    lines = [f"{'user':>10} {'mode':<11} {'base':>7} {'personal':>8} {'gain':>8} {'kept':>5} {'rolled':>6} "
             f"{'pulled':>6} {'learn s':>8}"]
    for r in results:
        lines.append(f"{r.user:>10} {r.mode:<11} {r.base_loss:>7.4f} {r.personal_loss:>8.4f} {r.gain:>+8.4f} "
                     f"{r.rounds_accepted:>5} {r.rounds_rolled_back:>6} {r.pullbacks:>6} {r.learn_seconds:>8.1f}")
    for mode in dict.fromkeys(r.mode for r in results):
        mine = [r for r in results if r.mode == mode]
        better = sum(r.gain > 0 for r in mine)
        lines.append(f"{mode}: mean gain {sum(r.gain for r in mine) / len(mine):+.4f} nats/token on the later text, "
                     f"better for {better} of {len(mine)} users")
    return lines
