"""The update modes the user can pick, in one registry: for each, the scheme it trains, its update rule, learning
rate and decay toward the base weights (tuned on dev users 21-28, never on the users we report).

"dyneval" is dynamic evaluation's RMS-normalised SGD (Krause et al. 2018); LoRA's adapters have no base gradient
statistics, so that mode keeps AdamW.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.optimizer import OptimizerConfig
from engine.scheme import UpdateScheme
from models import SCHEMES_DIR


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    rule: str = "dyneval"   # the optimizer kind: "dyneval" or "adamw"
    lr: float = 0.0
    decay: float = 0.0      # λ: share of the way back to the base weights per step (dyneval)

    @property
    def learns(self) -> bool:
        return self.name != "off"

    def optimizer(self, lr: float | None = None, decay: float | None = None) -> OptimizerConfig:
        """The optimizer this mode steps with (`lr` and `decay` override the registry's, for tuning)."""
        lr = self.lr if lr is None else lr
        if self.rule == "adamw":
            return OptimizerConfig(kind="adamw", lr=lr, beta1=0.0)
        return OptimizerConfig(kind="dyneval", lr=lr, decay=self.decay if decay is None else decay)

    def scheme(self, schemes_dir: Path = SCHEMES_DIR) -> UpdateScheme:
        """The scheme this mode trains, as the model ships it (models/schemes/NAME.json: the parts of GPT it names)."""
        path = Path(schemes_dir) / f"{self.name}.json"
        if not path.exists():
            raise ValueError(f"mode {self.name!r} has no scheme: {path} is missing")
        return UpdateScheme.from_dict(json.loads(path.read_text()))


REGISTRY: dict[str, Mode] = {m.name: m for m in (
    Mode("off", "no fine-tuning; the user's word statistics still learn"),
    Mode("sparse", "the shipped sparse scheme (models/schemes/sparse.json)", lr=1.5e-6, decay=0.0),
    Mode("full", "every weight", lr=2e-6, decay=0.0),
    Mode("output", "the output side of the tied embedding: no backprop into the blocks", lr=1.5e-6, decay=0.0),
    Mode("bias-only", "biases and normalisation vectors", lr=3e-4, decay=0.0),
    Mode("last-block", "every tensor of the last block", lr=3e-5, decay=0.0),
    Mode("lora", "rank-8 LoRA adapters (AdamW)", rule="adamw", lr=1e-3),
)}
MODES = tuple(REGISTRY)


def mode(name: str) -> Mode:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown update mode {name!r}; modes: {', '.join(MODES)}") from None
