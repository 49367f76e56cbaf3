"""Regularised fine-tuning as modifiers: `STRATEGY+l2sp:alpha=0.01,beta=0.01`.

A modifier adds a loss term to whichever strategy decides what trains (`full`,
`freeze-bottom:K`, `head-then-full`, `gradual-unfreeze`), so regularisers compose with every
freezing scheme instead of being copied into each. The penalties themselves are pure functions
in `transferkit.losses.continual`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..losses.continual import l2sp_penalty
from ..model import TransferModel
from ..zoo.base import Backbone
from .base import Modifier, OptimConfig, Strategy, register_modifier


@dataclass
class L2SPOptions:
    alpha: float = field(default=0.01, metadata={"help": "α: pull of the backbone towards its pretrained weights"})
    beta: float = field(default=0.01, metadata={"help": "β: plain L2 penalty on the new head"})

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("alpha and beta must be >= 0")


@register_modifier
class L2SP(Modifier):
    """L2-SP (Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning with
    Convolutional Networks", ICML 2018): the starting point is the reference,

        Ω(w) = α/2 · ‖w_S − w⁰_S‖² + β/2 · ‖w_S̄‖²,

    w_S the backbone's (pretrained, w⁰_S at the start of fine-tuning), w_S̄ the new head's. As in
    the paper, L2-SP replaces weight decay, which would pull towards 0 instead: every group's
    weight decay is set to 0.
    """

    name = "l2sp"
    summary = "penalise the distance to the pretrained weights (backbone) and the head's norm"
    Options = L2SPOptions

    def __init__(self, options: L2SPOptions | None = None) -> None:
        super().__init__(options)
        self.reference: dict[str, torch.Tensor] | None = None

    def check(self, strategy: Strategy, backbone: Backbone, optim: OptimConfig) -> None:
        if not strategy.trains_pretrained_weights:
            raise ConfigError(f"l2sp keeps fine-tuned pretrained weights near their start, and {strategy.name} "
                              "trains none; use it with full, freeze-bottom:K, head-then-full or gradual-unfreeze")

    def attach(self, model: TransferModel) -> None:
        if self.reference is None:  # once: the pretrained weights, before any step
            self.reference = {f"backbone.{name}": param.detach().clone()
                              for name, param in model.backbone.named_parameters()}

    def param_groups(self, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**group, "weight_decay": 0.0} for group in groups]

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        assert self.reference is not None, "attach() runs before training"
        device = next(model.head.parameters()).device
        if next(iter(self.reference.values())).device != device:  # follow the model once, not per step
            self.reference = {name: ref.to(device) for name, ref in self.reference.items()}
        return {"l2sp": l2sp_penalty(model.named_parameters(), self.reference, self.options.alpha,
                                     self.options.beta, head_prefix="head.")}
