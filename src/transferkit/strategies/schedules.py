"""Schedules of what trains: gradual unfreezing from the top.

Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification" (ULMFiT), ACL
2018: first train only the last layer, then unfreeze one more layer group per epoch from the top,
so the general features of the bottom layers are not overwritten by the large, noisy gradients
of a fresh head. At epoch e (0-based) the head and the top min(G, e·step) layer groups train.
Combine it with ULMFiT's discriminative learning rates through --layer-decay
(layer group g of G at lr·decay^(G−1−g); `head-then-full` is the two-phase variant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import TransferModel
from .base import Strategy, register_strategy, set_trainable


@dataclass
class GradualUnfreezeOptions:
    step: int = field(default=1, metadata={"help": "layer groups unfrozen at each epoch boundary"})

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError("step must be >= 1")


@register_strategy
class GradualUnfreeze(Strategy):
    """Epoch 0: the head only; each later epoch unfreezes `step` more layer groups from the top."""

    name = "gradual-unfreeze"
    summary = "head first, then one more layer group per epoch from the top (ULMFiT)"
    Options = GradualUnfreezeOptions

    def prepare(self, model: TransferModel) -> None:
        self.on_epoch_start(model, 0)

    def on_epoch_start(self, model: TransferModel, epoch: int) -> None:
        n = len(model.backbone.layer_groups())
        top = min(n, epoch * self.options.step)
        set_trainable(model, backbone_groups=range(n - top, n))

    def schedule_note(self) -> str:
        return f" at first; then {self.options.step} more layer group(s) per epoch from the top"
