"""Which tensors of a model a scheme selects: rules matched against module paths, block by block.

Also finds parameters shared by several modules (tied weights), which can only train whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch

import torch.nn as nn

from engine.scheme import PartRule, UpdateScheme
from engine.staged import StagedModel

NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class ModuleUpdate:
    """The union of every rule that selects one module (the largest learning-rate scale among them)."""

    bias: bool = False
    weight: float = 0.0
    lora_rank: int = 0
    lr_scale: float = 0.0

    def add(self, rule: PartRule) -> None:
        self.lr_scale = max(self.lr_scale, rule.lr_scale)
        self.bias |= rule.bias
        self.weight = max(self.weight, rule.weight)
        self.lora_rank = max(self.lora_rank, rule.lora_rank)
        if self.weight and self.lora_rank:
            raise ValueError("a module cannot train both its weight and a LoRA adapter")


def _relative_path(path: str, scope: str) -> str | None:
    """`path` relative to `scope` (a block's path, or "" for the whole model); None if outside it."""
    if not scope:
        return path
    if path == scope:
        return ""
    return path[len(scope) + 1:] if path.startswith(scope + ".") else None


def resolve(scheme: UpdateScheme, staged: StagedModel) -> dict[str, ModuleUpdate]:
    """Module path -> what trains in it, for every module with parameters of its own that some rule selects."""
    modules = [path for path, m in staged.module.named_modules() if next(m.parameters(recurse=False), None) is not None]
    updates: dict[str, ModuleUpdate] = {}
    for rule in scheme.rules:
        scopes = [staged.block_paths[i] for i in rule.block_indices(len(staged.block_paths))] if rule.blocks else [""]
        for scope in scopes:
            for path in modules:
                relative = _relative_path(path, scope)
                if relative is not None and any(fnmatch(relative, pattern) for pattern in rule.modules):
                    updates.setdefault(path, ModuleUpdate()).add(rule)
    return updates


def shared_parameters(module: nn.Module) -> set[int]:
    """Parameters used by more than one module (tied weights)."""
    seen: set[int] = set()
    shared: set[int] = set()
    for m in module.modules():
        for p in m.parameters(recurse=False):
            (shared if id(p) in seen else seen).add(id(p))
    return shared
