"""The server's side of federation (a Flower ServerApp): each round sends the base and its gradient statistics to
every connected device, takes the deltas that come back in time, turns down malformed ones, clips, and moves the
base by their mean weighted by tokens learned (FedAvg). Each round's base is saved as a checkpoint the app loads.

A round's progress (answers, drops, rejections, bytes per device) goes to `progress.json` in the output folder;
`result.json` marks the end (or the error that ended it).
"""
from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from app.federate.delta import DeltaError, clip, densify, norm, weighted_mean
from app.federate.device import METRICS
from app.federate.records import build_model, from_record, model_weights, record_bytes, to_record
from app.federate.secagg import aggregate_round
from app.federate.settings import FederationSettings
from models import TOKENIZER_PATH
from models.checkpoint import load_model, save_model, weights_sha256
from models.grad_stats import GRAD_STATS_FILE, load_grad_stats
from models.safe_io import read_json, save_tensors, write_json
from models.tokenizer import Tokenizer

PROGRESS_FILE, RESULT_FILE = "progress.json", "result.json"


def check_reply(content: RecordDict, shapes: dict[str, tuple[int, ...]], chars: int) -> tuple[dict, dict[str, float]]:
    """A device's full-shape delta and its counts (its tokens, its weight in the mean, capped at the round's
    characters); DeltaError if the reply is not a well-formed delta."""
    if set(content.array_records) != {"delta"} or set(content.metric_records) != {"metrics"} \
            or content.config_records:
        raise DeltaError("the reply holds other records than a delta and its counts")
    metrics = dict(content.metric_records["metrics"])
    if set(metrics) != set(METRICS) or not all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()):
        raise DeltaError("the reply's counts are missing or not finite")
    if metrics["tokens"] <= 0:
        raise DeltaError("no tokens learned")
    metrics["tokens"] = min(metrics["tokens"], float(chars))  # no device outweighs what a round can hold
    try:
        return densify(from_record(content.array_records["delta"]), shapes), metrics
    except DeltaError:
        raise
    except Exception as err:  # arrays that do not even decode (not .npy, object dtype, corrupt)
        raise DeltaError(f"the delta does not decode: {type(err).__name__}") from None


class Rounds:
    """The federation's state on the server: the base weights, their statistics, and what each round did."""

    def __init__(self, settings: FederationSettings):
        self.settings = settings
        self.out = Path(settings.out)
        self.out.mkdir(parents=True, exist_ok=True)
        start = load_model(settings.base)
        self.model_json = json.dumps(start.config.to_dict())
        self.weights = model_weights(start)
        self.shapes = {name: value.shape for name, value in self.weights.items()}
        self.base_sha256 = weights_sha256(settings.base)
        stats = load_grad_stats(Path(settings.base) / GRAD_STATS_FILE, self.base_sha256)
        self.stats = {name: value.numpy() for name, value in stats.tensors.items()}
        self.tokenizer = Tokenizer(TOKENIZER_PATH)
        self.progress: list[dict] = []
        self.tokens = 0.0

    def config(self, number: int) -> dict:
        s = self.settings
        return {"round": number, "mode": s.mode, "budget": s.budget, "chars": s.chars, "max-norm": s.max_norm,
                "model": self.model_json}

    def messages(self, nodes: list[int], number: int) -> list[Message]:
        """The round's message to each node: the base and its statistics serialised once, shared by all."""
        base, stats = to_record(self.weights), to_record(self.stats)
        return [Message(content=RecordDict({"base": base, "stats": stats, "config": ConfigRecord(self.config(number))}),
                        dst_node_id=node, message_type="train", group_id=str(number)) for node in nodes]

    def run_secagg_round(self, grid: Grid, context: Context, number: int) -> dict:
        """A round under SecAgg+: only the mean delta is seen, so nothing per device is checked or reported."""
        start, nodes = time.time(), len(list(grid.get_node_ids()))
        mean, answered, tokens = aggregate_round(grid, context, self.weights, self.stats, self.config(number), nodes,
                                                 self.settings.min_replies, self.settings.round_timeout)
        applied = mean is not None and self.apply(mean, min(1.0, self.settings.chars / max(tokens, 1.0)))
        if applied:
            self.tokens += tokens
        return {"round": number, "sampled": nodes, "answered": answered, "accepted": answered,
                "dropped": nodes - answered, "rejected": [], "errors": [], "clipped": 0, "applied": applied,
                "devices": {}, "tokens": tokens, "nats_base": None, "nats_personal": None,
                "seconds": time.time() - start, "checkpoint": str(self.save(number)), "secagg": True}

    def run_round(self, grid: Grid, number: int) -> dict:
        start = time.time()
        nodes = sorted(grid.get_node_ids())
        replies = list(grid.send_and_receive(self.messages(nodes, number),
                                             timeout=self.settings.round_timeout))
        deltas, weights, answered, rejected, errors = [], [], {}, [], []
        clipped = 0
        scores = {"tokens": 0.0, "nats-base": 0.0, "nats-personal": 0.0}
        for reply in replies:
            if reply.has_error():
                errors.append({"code": int(reply.error.code), "reason": str(reply.error.reason)[:200]})
                continue
            node = int(reply.metadata.src_node_id)
            answered[node] = {"bytes": record_bytes(reply.content.array_records["delta"])
                              if "delta" in reply.content.array_records else 0}
            try:
                delta, metrics = check_reply(reply.content, self.shapes, self.settings.chars)
            except DeltaError as err:
                rejected.append({"node": node, "reason": str(err)})
                continue
            delta, was_clipped = clip(delta, self.settings.max_norm)
            clipped += was_clipped
            answered[node].update(norm=norm(delta), **metrics)
            deltas.append(delta)
            weights.append(metrics["tokens"])
            for key in ("nats-base", "nats-personal"):
                scores[key] += metrics[key] * metrics["tokens"]
            scores["tokens"] += metrics["tokens"]
        applied = len(deltas) >= max(self.settings.min_replies, 1) and \
            self.apply(weighted_mean(deltas, weights), max(weights) / sum(weights))
        if applied:
            self.tokens += scores["tokens"]
        folder = self.save(number)
        tokens = max(scores["tokens"], 1.0)
        return {"round": number, "sampled": len(nodes), "answered": len(answered), "accepted": len(deltas),
                "dropped": len(nodes) - len(answered), "rejected": rejected, "errors": errors, "clipped": clipped,
                "applied": applied, "devices": {str(k): v for k, v in answered.items()},
                "tokens": scores["tokens"], "nats_base": scores["nats-base"] / tokens,
                "nats_personal": scores["nats-personal"] / tokens, "seconds": time.time() - start,
                "checkpoint": str(folder)}

    def apply(self, mean: dict[str, np.ndarray], largest_share: float) -> bool:
        """Move the base by the server rate times the mean delta, with Gaussian noise (fresh entropy) of `dp_noise`
        times one device's largest possible influence on the mean (max_norm x its largest weight share). False,
        and the base unchanged, if the mean is not finite."""
        s = self.settings
        if not all(np.isfinite(value).all() for value in mean.values()):
            return False
        std = s.dp_noise * s.max_norm * largest_share
        rng = np.random.default_rng()
        for name, value in mean.items():
            noise = rng.normal(0.0, std, value.shape).astype(np.float32) if std else 0.0
            self.weights[name] = (self.weights[name] + s.server_lr * (value + noise)).astype(np.float32)
        return True

    def save(self, number: int) -> Path:
        """The base after round `number` as a model folder, with its gradient statistics and provenance."""
        folder = self.out / f"round-{number}"
        model = build_model(self.model_json, self.weights)
        provenance = {"federated": {"from_base": self.settings.base, "from_base_sha256": self.base_sha256,
                                    "round": number, "tokens_learned": self.tokens,
                                    "settings": asdict(self.settings)}}
        save_model(model, folder, self.tokenizer, extra={**read_json(Path(self.settings.base) / "config.json"),
                                                         **provenance})
        if self.settings.grad_corpus:
            self.stats = measure_grad_stats(model, self.tokenizer, self.settings.grad_corpus)
            info = {"corpus": Path(self.settings.grad_corpus).name}
        else:
            info = {"carried_from": self.base_sha256}
        save_tensors(folder / GRAD_STATS_FILE, {k: torch.from_numpy(v) for k, v in self.stats.items()},
                     {"base_sha256": weights_sha256(folder), "info": json.dumps(info)})
        return folder


def measure_grad_stats(model, tokenizer: Tokenizer, corpus: str) -> dict[str, np.ndarray]:
    from models.build.corpus import training_documents
    from models.build.grad_stats import compute_grad_stats

    stats = compute_grad_stats(model, tokenizer, training_documents([Path(corpus)]))
    return {name: value.numpy() for name, value in stats.items()}


def wait_for_nodes(grid: Grid, settings: FederationSettings) -> None:
    deadline = time.time() + settings.wait_seconds
    while len(list(grid.get_node_ids())) < settings.nodes and time.time() < deadline:
        time.sleep(0.5)


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    out = Path(str(context.run_config["out"]))
    try:
        settings = FederationSettings.from_run_config(dict(context.run_config))
        torch.set_num_threads(1)
        rounds = Rounds(settings)
        wait_for_nodes(grid, settings)
        for number in range(1, settings.rounds + 1):
            if settings.secagg:
                rounds.progress.append(rounds.run_secagg_round(grid, context, number))
            else:
                rounds.progress.append(rounds.run_round(grid, number))
            write_json(out / PROGRESS_FILE, {"rounds": rounds.progress})
        write_json(out / RESULT_FILE, {"done": True, "rounds": len(rounds.progress)})
    except Exception:  # the launcher waits on this file: tell it what ended the run
        write_json(out / RESULT_FILE, {"done": False, "error": traceback.format_exc()})
        raise
