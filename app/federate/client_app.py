"""The device's side of federation (a Flower ClientApp): each round's message is answered by the device's round
(`device.learn_round`): the sparse delta and a few counts; with SecAgg+ on, through Flower's secure-aggregation mod.
Its text never leaves it.
"""
from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from app.federate.device import learn_round
from app.federate.records import to_record
from app.federate.secagg import LEGACY_PARAMETERS, secagg_round


def local_round(content: RecordDict, node_config: dict) -> RecordDict:
    """The reply to a round's message: the sparse delta and the round's counts."""
    sent, metrics = learn_round(content, node_config)
    return RecordDict({"delta": to_record(sent), "metrics": MetricRecord(metrics)})


def secagg_when_asked(msg: Message, context: Context, call_next) -> Message:
    """Flower's SecAgg+ protocol, for the rounds the server runs with it (its messages carry its configs)."""
    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(mods=[secagg_when_asked])


@app.train()
def train(msg: Message, context: Context) -> Message:
    if LEGACY_PARAMETERS in msg.content.array_records:  # a SecAgg+ round speaks Flower's legacy FitIns / FitRes
        return Message(content=secagg_round(msg.content, context.node_config), reply_to=msg)
    return Message(content=local_round(msg.content, context.node_config), reply_to=msg)
