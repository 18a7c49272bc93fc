"""What travels between the federation's server and devices, as Flower records: numpy tensors in an ArrayRecord
(serialised as .npy, never pickled), the round's settings in a ConfigRecord, and the model they describe.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from flwr.app import Array, ArrayRecord

from models.gpt import GPT, GPTConfig
from models.grad_stats import GradStats

Tensors = dict[str, np.ndarray]


def to_record(tensors: Tensors) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in tensors.items()})


def from_record(record: ArrayRecord) -> Tensors:
    return {name: array.numpy() for name, array in record.items()}


def record_bytes(record: ArrayRecord) -> int:
    """Bytes the arrays take in the message (.npy header and data)."""
    return sum(len(array.data) for array in record.values())


def model_weights(model: GPT) -> Tensors:
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


def build_model(config_json: str, weights: Tensors) -> GPT:
    """The model a round starts from: its architecture (a GPTConfig as JSON) with the server's weights."""
    model = GPT(GPTConfig.from_dict(json.loads(config_json)))
    params = dict(model.named_parameters())
    if set(weights) != set(params):
        raise ValueError("the base sent does not match the model's parameters")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(torch.from_numpy(value))
    return model.eval()


def grad_stats_of(tensors: Tensors) -> GradStats:
    return GradStats({name: torch.from_numpy(value) for name, value in tensors.items()}, {})
