"""How much of the backbone trains: linear probe, freeze the bottom K groups, full, head-then-full.

Layer groups come from the backbone (group 0 = embeddings/stem, then blocks bottom to top), so
the same strategies work for text and vision backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..model import TransferModel
from ..zoo.base import Backbone
from .base import OptimConfig, Strategy, layer_multipliers, layerwise_param_groups, register_strategy, set_trainable


@register_strategy
class LinearProbe(Strategy):
    """Feature extraction: the backbone is frozen; features are computed once and cached, and only
    the head trains on them (fast: one forward pass over the data in total)."""

    name = "linear-probe"
    summary = "frozen backbone, head trained on cached features"
    uses_feature_cache = True
    trains_pretrained_weights = False

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        if optim.layer_decay != 1.0:
            raise ConfigError("--layer-decay has no effect with linear-probe (no backbone layer trains); drop it")

    def prepare(self, model: TransferModel) -> None:
        set_trainable(model, backbone_groups=[])


@dataclass
class FreezeBottomOptions:
    k: int = field(default=2, metadata={"help": "number of layer groups frozen, from the bottom (group 0 = embeddings/stem)"})

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError("k must be >= 0")


@register_strategy
class FreezeBottom(Strategy):
    """The bottom K layer groups stay frozen (general features); the rest and the head train.

    The frozen bottom runs in eval mode (no dropout), a fixed function of the input, so the
    pipeline computes its output once and trains the top on it every epoch (`cache_frozen`)."""

    name = "freeze-bottom"
    summary = "bottom K layer groups frozen, the rest fine-tuned"
    Options = FreezeBottomOptions

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        self._trained_groups(backbone)

    def prepare(self, model: TransferModel) -> None:
        set_trainable(model, backbone_groups=self._trained_groups(model.backbone))
        model.frozen_bottom = self.options.k  # frozen for the whole run: eval mode, computed once

    def _trained_groups(self, backbone: Backbone) -> range:
        n = len(backbone.layer_groups())
        if self.options.k >= n:
            raise ConfigError(f"freeze-bottom:{self.options.k}: {backbone.source} has only {n} layer groups; "
                              f"use k < {n} (or linear-probe to freeze everything)")
        return range(self.options.k, n)


@register_strategy
class Full(Strategy):
    """Full fine-tuning: every backbone parameter and the head train."""

    name = "full"
    summary = "everything trains"


@dataclass
class HeadThenFullOptions:
    head_epochs: int = field(default=1, metadata={"help": "epochs training only the head on the frozen backbone"})
    decay: float = field(default=0.7, metadata={"help": "discriminative LR: each lower layer group's LR is multiplied by this"})

    def __post_init__(self) -> None:
        if self.head_epochs < 0 or not 0 < self.decay <= 1:
            raise ValueError("head_epochs must be >= 0 and decay in (0, 1]")


@register_strategy
class HeadThenFull(Strategy):
    """fastai's `fine_tune` (Howard & Ruder, ULMFiT, ACL 2018): train the head on the frozen
    backbone first, then unfreeze everything with discriminative learning rates,
    lr_g = lr · decay^(G−1−g) for layer group g of G (lower layers change less)."""

    name = "head-then-full"
    summary = "head first, then all layers with discriminative learning rates"
    Options = HeadThenFullOptions

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        if optim.layer_decay != 1.0:
            raise ConfigError("head-then-full has its own discriminative decay: use head-then-full:decay="
                              f"{optim.layer_decay:g} instead of --layer-decay")

    def prepare(self, model: TransferModel) -> None:
        set_trainable(model, backbone_groups=[] if self.options.head_epochs > 0 else None)

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict]:
        n = len(model.backbone.layer_groups())
        return layerwise_param_groups(model, optim, layer_multipliers(n, self.options.decay))

    def on_epoch_start(self, model: TransferModel, epoch: int) -> None:
        set_trainable(model, backbone_groups=[] if epoch < self.options.head_epochs else None)

    def schedule_note(self) -> str:
        if self.options.head_epochs == 0:
            return ""
        return f" for the first {self.options.head_epochs} epoch(s), then every layer"
