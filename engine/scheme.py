"""Update schemes as data: which parts of a model train (bias, weight or a fraction of its input channels, LoRA).

A scheme is a list of rules plus the share of newest positions the loss covers; it round-trips through JSON.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class PartRule:
    """What trains in the modules a rule selects.

    `blocks` picks blocks by index like a Python subscript ("-1", "-2:", ":", "0,2"); the `modules` glob patterns
    are then matched against module paths inside those blocks. With `blocks` empty, the patterns are matched
    against paths in the whole model ("final_norm", "*").
    `bias` trains biases, and both affine vectors of normalization layers. `weight` is the fraction of the
    weight's input channels that train (0 frozen, 1 all; between, Linear only). `lora_rank` adds a LoRA
    adapter of that rank to a Linear whose weight is otherwise frozen. `lr_scale` multiplies the update mode's
    learning rate for what the rule trains (a few tensors learning alone take larger steps than a whole model can).
    """

    modules: tuple[str, ...] = ("*",)
    blocks: str = ""
    bias: bool = False
    weight: float = 0.0
    lora_rank: int = 0
    lr_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "modules", tuple(self.modules))
        if not self.lr_scale > 0:
            raise ValueError(f"lr_scale must be positive, not {self.lr_scale}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight fraction must be in [0, 1], not {self.weight}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, not {self.lora_rank}")
        if self.lora_rank and self.weight:
            raise ValueError("a rule trains either a LoRA adapter or the weight itself, not both")
        if not (self.bias or self.weight or self.lora_rank):
            raise ValueError("a rule must train something")

    def block_indices(self, n_blocks: int) -> list[int]:
        """The indices `blocks` selects among `n_blocks` blocks, in order, without repeats."""
        chosen: list[int] = []
        for item in filter(None, (part.strip() for part in self.blocks.split(","))):
            if ":" in item:
                start, stop = (int(s) if s.strip() else None for s in item.split(":"))
                chosen += range(n_blocks)[slice(start, stop)]
            else:
                chosen.append(range(n_blocks)[int(item)])
        return list(dict.fromkeys(chosen))


@dataclass(frozen=True)
class UpdateScheme:
    """A named set of rules; `loss_last_fraction` < 1 puts the loss on the newest positions of each sequence only.

    `frozen_int8` holds the weights of frozen Linears as int8 while the plan runs (model memory, not training memory).
    `remember_context`: the positions before the loss's run without gradient, as a memory the model remembers them
    by (Transformer-XL's stop-gradient memory), so forward and backward cover the loss's positions alone; a plan
    extends the memory as a stream goes on rather than recomputing it.
    """

    name: str
    rules: tuple[PartRule, ...] = field(default_factory=tuple)
    loss_last_fraction: float = 1.0
    description: str = ""
    frozen_int8: bool = False
    remember_context: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        if not 0.0 < self.loss_last_fraction <= 1.0:
            raise ValueError(f"loss_last_fraction must be in (0, 1], not {self.loss_last_fraction}")

    def loss_positions(self, total: int) -> int:
        """How many of `total` positions (the newest) the loss covers."""
        return max(1, math.ceil(total * self.loss_last_fraction))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "UpdateScheme":
        _check_keys(cls, data)
        rules = []
        for rule in data.get("rules", []):
            _check_keys(PartRule, rule)
            rules.append(PartRule(**rule))
        return cls(**{**data, "rules": tuple(rules)})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "UpdateScheme":
        return cls.from_dict(json.loads(text))


def _check_keys(cls: type, data: dict) -> None:
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
