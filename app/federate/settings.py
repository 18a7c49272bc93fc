"""A federation's settings, one dataclass: what `pocketkb federate` passes to the server as Flower's run config
(each field a key, `-` for `_`), and what the app descriptor declares with its defaults.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass
class FederationSettings:
    base: str = ""                 # the model folder the first round starts from
    out: str = ""                  # where each round's checkpoint and the progress file go
    rounds: int = 5
    nodes: int = 2                 # devices to wait for before the first round
    wait_seconds: float = 120.0    # ... at most this long; then the round goes ahead with those connected
    mode: str = "sparse"           # the update mode each device learns with
    budget: int = 0                # values a device may upload per round (0: all it changed)
    chars: int = 4000              # characters of its user's text a device learns per round
    round_timeout: float = 300.0   # a round goes on with the replies that arrived by then
    min_replies: int = 1           # accepted deltas a round needs to change the base
    max_norm: float = 1.0          # L2 norm each delta is clipped to (by the device, then again by the server)
    server_lr: float = 1.0         # the base moves by this times the weighted mean of the deltas
    dp_noise: float = 0.0          # Gaussian noise on the mean, as a multiple of max_norm / accepted deltas
    grad_corpus: str = ""          # text to re-measure each round's gradient statistics on ("": keep the first's)
    secagg: bool = False           # aggregate with Flower's SecAgg+: the server sees only the sum

    @classmethod
    def from_run_config(cls, config: dict) -> "FederationSettings":
        values = {f.name: config[f.name.replace("_", "-")] for f in fields(cls) if f.name.replace("_", "-") in config}
        return cls(**{name: type(getattr(cls(), name))(value) for name, value in values.items()})

    def run_config_toml(self) -> str:
        """The settings as a TOML table body (`key = value` lines), for `flwr run` and the app descriptor."""
        return "".join(f"{name.replace('_', '-')} = {json.dumps(value)}\n" for name, value in asdict(self).items())
