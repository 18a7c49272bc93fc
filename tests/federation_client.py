"""A ClientApp for the federation tests (not collected by pytest): the product's device (its train handler and
SecAgg+ mod) under an audit mod that records every outgoing message, and devices that misbehave as their node
config says ("fault").

Faults: "nan" (a NaN in the delta), "huge" (the delta times 1e6), "malformed" (indices out of range), "slow" (the
device sleeps before learning, to be killed mid-round).
"""
import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from app.federate.client_app import secagg_when_asked, train as device_train
from app.federate.records import from_record, to_record


def audit_mod(msg: Message, context: Context, call_next) -> Message:
    reply = call_next(msg, context)
    if "audit" in context.node_config and not reply.has_error():
        content = reply.content
        entry = {"arrays": {rec: {key: {"dtype": str(arr.dtype), "shape": list(arr.shape), "bytes": len(arr.data)}
                                  for key, arr in record.items()} for rec, record in content.array_records.items()},
                 "metrics": {rec: {k: type(v).__name__ for k, v in record.items()}
                             for rec, record in content.metric_records.items()},
                 "configs": {rec: {k: type(v).__name__ for k, v in record.items()}
                             for rec, record in content.config_records.items()}}
        with open(str(context.node_config["audit"]), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    return reply


def _corrupt(reply: RecordDict, fault: str) -> None:
    delta = from_record(reply["delta"])
    name = next(k for k in delta if "|" not in k)
    if fault == "nan":
        delta[name] = delta[name].copy()
        delta[name].flat[0] = np.nan
    elif fault == "huge":
        delta = {k: v * 1e6 if "|" not in k else v for k, v in delta.items()}
    elif fault == "malformed":
        index = next(k for k in delta if "|" in k)
        delta[index] = delta[index] + 10**6
    reply["delta"] = to_record(delta)


app = ClientApp(mods=[audit_mod, secagg_when_asked])


@app.train()
def train(msg: Message, context: Context) -> Message:
    fault = str(context.node_config.get("fault", ""))
    if fault == "slow":
        Path(str(context.node_config["state"])).mkdir(parents=True, exist_ok=True)
        (Path(str(context.node_config["state"])) / "started").touch()
        time.sleep(600)
    reply = device_train(msg, context)
    if fault:
        _corrupt(reply.content, fault)
    return reply
