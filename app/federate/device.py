"""A device's federated round: its user's next stretch of text is learned with the product's own learner and update
mode, from the server's base; what goes back is the delta's slices that fit the upload budget, clipped, and a few
counts. The device keeps what the budget left out and adds it to its next round's delta (error feedback).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from flwr.app import RecordDict

from app.federate.delta import clip, select
from app.federate.records import build_model, from_record, grad_stats_of
from app.learning.judge import per_token
from app.learning.learner import Learner
from app.learning.settings import LearnerConfig
from app.typing.sentences import finished_sentences
from models import GENERAL_REPLAY_PATH, TOKENIZER_PATH
from models.general_replay import load as load_general
from models.safe_io import load_tensors, save_tensors
from models.tokenizer import Tokenizer

RESIDUAL_FILE = "residual.safetensors"
METRICS = ("tokens", "nats-base", "nats-personal", "changed-values", "sent-values", "clipped")


def round_sentences(text: str, round_number: int, chars: int) -> list[str]:
    """The sentences of `text` starting in the round's stretch of `chars` characters (round 1 is the first)."""
    sentences, _ = finished_sentences(text + "\n", 0)
    picked, offset = [], 0
    low, high = (round_number - 1) * chars, round_number * chars
    for sentence in sentences:
        if low <= offset < high:
            picked.append(sentence)
        offset += len(sentence) + 1
    return picked


def _residual(state: Path) -> dict[str, np.ndarray]:
    path = state / RESIDUAL_FILE
    return {k: v.numpy() for k, v in load_tensors(path).items()} if path.exists() else {}


def learn_round(content: RecordDict, node_config: dict) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Learn this round's text from the base in `content`: the sparse delta to send, and the round's counts."""
    config = content["config"]
    model = build_model(str(config["model"]), from_record(content["base"]))
    torch.set_num_threads(1)
    text = Path(str(node_config["text"])).read_text(encoding="utf-8")
    sentences = round_sentences(text, int(config["round"]), int(config["chars"]))
    if not sentences:  # an error reply: the round goes on without this device, its residual kept for later
        raise ValueError(f"no text left for round {config['round']}")
    learner = Learner(model, Tokenizer(TOKENIZER_PATH), load_general(GENERAL_REPLAY_PATH),
                      LearnerConfig(mode=str(config["mode"]), keep_scores=True, budget_ms=float("inf")),
                      grad_stats=grad_stats_of(from_record(content["stats"])))
    for sentence in sentences:
        learner.add(sentence)
        learner.run_round()
    scores = learner.scored()
    learner.close()
    delta = {name: value.numpy() for name, value in learner.deltas().items()}
    state = Path(str(node_config["state"]))
    state.mkdir(parents=True, exist_ok=True)
    for name, value in _residual(state).items():  # what earlier budgets left out
        delta[name] = delta[name] + value if name in delta else value
    delta, clipped = clip(delta, float(config["max-norm"]))
    budget = int(config["budget"]) or None
    sent, kept = select(delta, budget)
    save_tensors(state / RESIDUAL_FILE, {name: torch.from_numpy(value) for name, value in kept.items()})
    metrics = {"tokens": float(sum(s.tokens for s in scores)),
               "nats-base": per_token(scores, "base"), "nats-personal": per_token(scores, "personal"),
               "changed-values": float(sum(int(np.count_nonzero(v)) for v in delta.values())),
               "sent-values": float(sum(v.size for k, v in sent.items() if "|" not in k)),
               "clipped": float(clipped)}
    return sent, metrics
