"""Rounds under Flower's SecAgg+ (`secagg = true`): the server sees only the token-weighted mean of the devices'
deltas, never one of them. SecAgg+ exists on Flower's legacy API only, so a round is one `DefaultWorkflow` round
with `SecAggPlusWorkflow` and the legacy FedAvg, and devices answer FitIns with FitRes.

Masked vectors must have equal shapes: each device sends its budgeted delta made dense over every parameter, so
the upload is not sparse. The server cannot check or clip a single delta: devices clip their own (to `max_norm`,
which is also SecAgg+'s clipping range), and the token count travels in plain text, as FitRes's `num_examples`
(capped at the round's characters, SecAgg+'s `max_weight`).
"""
from __future__ import annotations

import json

import numpy as np
from flwr.app import ConfigRecord, Context, RecordDict
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid

from app.federate.delta import densify
from app.federate.device import learn_round
from app.federate.records import Tensors, to_record

LEGACY_PARAMETERS = "fitins.parameters"
ROUND_KEYS = ("round", "mode", "budget", "chars", "max-norm", "model")


def secagg_round(content: RecordDict, node_config: dict) -> RecordDict:
    """The device: the legacy FitIns (base then gradient statistics, named in its config) learned as a plain
    round, the delta answered dense in the base's order, the tokens as `num_examples`."""
    fitins = compat.recorddict_to_fitins(content, keep_input=True)
    arrays = parameters_to_ndarrays(fitins.parameters)
    names, stats_names = json.loads(str(fitins.config["names"])), json.loads(str(fitins.config["stats-names"]))
    base = dict(zip(names, arrays[:len(names)]))
    plain = RecordDict({"base": to_record(base), "stats": to_record(dict(zip(stats_names, arrays[len(names):]))),
                        "config": ConfigRecord({key: fitins.config[key] for key in ROUND_KEYS})})
    sent, metrics = learn_round(plain, node_config)
    dense = densify(sent, {name: value.shape for name, value in base.items()})
    vectors = [dense.get(name, np.zeros_like(base[name])) for name in names]
    tokens = min(int(metrics["tokens"]), int(fitres_weight_cap(fitins.config)))
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(vectors), tokens, {})
    return compat.fitres_to_recorddict(fitres, keep_input=True)


def fitres_weight_cap(config: dict) -> float:
    """SecAgg+'s `max_weight`: the round's characters, above any round's tokens but near them, since each device's
    vector is scaled by tokens / max_weight before quantization (a smaller share loses precision)."""
    return float(config["chars"])


def aggregate_round(grid: Grid, context: Context, weights: Tensors, stats: Tensors, config: dict, nodes: int,
                    min_replies: int, timeout: float) -> tuple[Tensors | None, int, float]:
    """The server: one SecAgg+ round. (mean delta by name, or None if too few devices answered; devices that
    answered; tokens they learned)."""
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    class Counted(FedAvg):
        answered, tokens = 0, 0.0

        def aggregate_fit(self, server_round, results, failures):
            self.answered, self.tokens = len(results), float(sum(res.num_examples for _, res in results))
            return super().aggregate_fit(server_round, results, failures)

    names = list(weights)
    settings = {**config, "names": json.dumps(names), "stats-names": json.dumps(list(stats))}
    strategy = Counted(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=max(min_replies, 2),
                       min_evaluate_clients=0, min_available_clients=max(min_replies, 2),
                       on_fit_config_fn=lambda _: settings,
                       initial_parameters=ndarrays_to_parameters([*weights.values(), *stats.values()]),
                       fit_metrics_aggregation_fn=lambda metrics: {})
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1, round_timeout=timeout),
                           strategy=strategy)
    secure = SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=0.67, clipping_range=float(config["max-norm"]),
                                max_weight=fitres_weight_cap(config), timeout=timeout)
    DefaultWorkflow(fit_workflow=secure)(grid, legacy)
    if strategy.answered < max(min_replies, 2):
        return None, strategy.answered, strategy.tokens
    record = legacy.state.array_records[MAIN_PARAMS_RECORD]  # the workflow's global parameters: now the mean delta
    mean = parameters_to_ndarrays(compat.arrayrecord_to_parameters(record, keep_input=True))
    return dict(zip(names, (m.astype(np.float32) for m in mean))), strategy.answered, strategy.tokens
