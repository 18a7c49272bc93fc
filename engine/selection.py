"""What a compiled scheme selects in a staged module, attached to it: the trained tensors (whole, split by channels or
LoRA adapters) with their learning-rate scales, frozen Linears held as int8, embedding gradients kept factored, and
the stage where backprop stops and the one after which only the loss's positions run.
"""
from __future__ import annotations

import torch.nn as nn

from engine.adapters import Lora, LinearAdapter, PartialChannels
from engine.factored import FactoredGradient, factorable, restore_forward, route_gradient
from engine.quant import Int8Weight
from engine.resolve import NORMS, ModuleUpdate, resolve, shared_parameters
from engine.scheme import UpdateScheme
from engine.staged import StagedModel


class Selection:
    """Attaches on construction (refusing a scheme that selects nothing); `release()` gives the module back."""

    def __init__(self, staged: StagedModel, scheme: UpdateScheme):
        self.staged, self.scheme = staged, scheme
        module = staged.module
        self._requires_grad = {id(p): p.requires_grad for p in module.parameters()}
        module.requires_grad_(False)
        self.trainable: dict[str, nn.Parameter] = {}
        self.adapters: dict[str, LinearAdapter] = {}
        self.int8: dict[str, Int8Weight] = {}
        self._selected: set[int] = set()  # the modules the scheme selects (a tied weight trains through these only)
        self.factored: dict[str, FactoredGradient] = {}
        self.lr_scales: dict[str, float] = {}  # trained tensor -> its rule's learning-rate scale
        self._routed: list[nn.Module] = []
        try:
            self._attach(resolve(scheme, staged))
            if not self.trainable:
                raise ValueError(f"scheme {scheme.name!r} selects no tensor of this model")
            if scheme.frozen_int8:
                self._hold_frozen_as_int8()
            self._route_embedding_gradients()
            self.cut = self._find_cut()
            self.slice_at = self._find_slice()
            self._check_memory()
        except Exception:
            self.release()
            raise

    def _attach(self, updates: dict[str, ModuleUpdate]) -> None:
        modules = dict(self.staged.module.named_modules())
        shared = shared_parameters(self.staged.module)
        for path, update in updates.items():
            m = modules[path]
            self._selected.add(id(m))
            names = []
            if update.bias:
                names += ["bias"] + (["weight"] if isinstance(m, NORMS) else [])
            if update.weight == 1.0:
                names.append("weight")
            for name in dict.fromkeys(names):
                p = getattr(m, name, None)
                if isinstance(p, nn.Parameter):
                    p.requires_grad_(True)
                    name = self._parameter_name(p)
                    self.trainable.setdefault(name, p)
                    self.lr_scales[name] = max(self.lr_scales.get(name, 0.0), update.lr_scale)
            if 0.0 < update.weight < 1.0 or update.lora_rank:
                if id(m.weight) in shared:
                    raise ValueError(f"{path}.weight is shared with another module; it can only train whole")
                adapter = PartialChannels(m, update.weight) if update.weight else Lora(m, update.lora_rank)
                self.adapters[path] = adapter
                for k, v in adapter.trainable().items():
                    self.trainable[f"{path}.{k}"] = v
                    self.lr_scales[f"{path}.{k}"] = update.lr_scale

    def _hold_frozen_as_int8(self) -> None:
        shared = shared_parameters(self.staged.module)
        for path, m in self.staged.module.named_modules():
            if (isinstance(m, nn.Linear) and path not in self.adapters and not m.weight.requires_grad
                    and id(m.weight) not in shared):
                self.int8[path] = Int8Weight(m, self._requires_grad[id(m.weight)])

    def _route_embedding_gradients(self) -> None:
        """A trained weight that an embedding looks up keeps its gradient factored (engine/factored.py) when every
        module using it can: the lookup's rows and a tied projection's two thin matrices, never the dense matrix."""
        modules = list(self.staged.module.modules())
        for name, p in self.trainable.items():
            users = [m for m in modules if getattr(m, "weight", None) is p]
            if any(isinstance(m, nn.Embedding) for m in users) and all(factorable(m, p) for m in users):
                self.factored[name] = FactoredGradient(p.shape)
                for m in users:
                    route_gradient(m, self.factored[name])
                self._routed += users

    def _parameter_name(self, p: nn.Parameter) -> str:
        return next(name for name, q in self.staged.module.named_parameters() if q is p)

    def _find_cut(self) -> int:
        """The first stage holding a selected module: backprop stops there. A weight tied to a module of an earlier
        stage (an embedding shared with the output projection) trains from the selected module's use of it alone."""
        return next(i for i, stage in enumerate(self.staged.stages)
                    if any(id(sub) in self._selected for m in stage.modules for sub in m.modules()))

    def _find_slice(self) -> int:
        """The stage boundary after which every stage is position-wise: the loss's positions can be cut there."""
        if self.staged.positions_dim is None:
            if self.scheme.loss_last_fraction < 1.0:
                raise ValueError("loss_last_fraction < 1 needs a model with positions (positions_dim)")
            return len(self.staged.stages)
        at = len(self.staged.stages)
        while at > self.cut and not self.staged.stages[at - 1].mixes_positions:
            at -= 1
        return at

    def _check_memory(self) -> None:
        if not self.scheme.remember_context:
            return
        if self.staged.remember is None or self.staged.positions_dim is None:
            raise ValueError(f"scheme {self.scheme.name!r} remembers context: the staged model needs `remember`")
        if any(stage.mixes_positions and stage.run_after is None for stage in self.staged.stages):
            raise ValueError("every stage that mixes positions needs `run_after` to run after a memory")

    def release(self) -> None:
        """Give the module back its forward methods and gradient flags; trained weights stay in it."""
        for module in self._routed:
            restore_forward(module)
        self._routed = []
        for adapter in self.adapters.values():
            adapter.detach()
        for weight in self.int8.values():
            weight.release()
        self.adapters.clear()
        self.int8.clear()
        for p in self.staged.module.parameters():
            p.requires_grad_(self._requires_grad.get(id(p), p.requires_grad))
