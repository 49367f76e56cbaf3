"""BitFit: only the bias terms of the backbone (and the head) train.

Ben Zaken, Ravfogel & Goldberg, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models", ACL 2022: in y = W·x + b only b changes (every bias
of every layer, LayerNorm's/BatchNorm's shift included), about 0.1% of a BERT's parameters.
The paper searched learning rates of 1e-4 to 1e-3: `lr_scale` 10 gives 5e-4 at the default --lr.
The artifact is a full one (every weight is saved); merging is nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import TransferModel
from .base import OptimConfig, Strategy, register_strategy, scaled_param_groups, set_trainable


@dataclass
class BitFitOptions:
    lr_scale: float = field(default=10.0, metadata={"help": "learning rate of the biases = --lr × lr_scale"})

    def __post_init__(self) -> None:
        if not self.lr_scale > 0:
            raise ValueError("lr_scale must be > 0")


@register_strategy
class BitFit(Strategy):
    """Biases + head: the backbone's weights stay frozen, its bias vectors train."""

    name = "bitfit"
    summary = "bias terms and head only"
    Options = BitFitOptions

    def prepare(self, model: TransferModel) -> None:
        set_trainable(model, backbone_groups=[])
        for group in model.backbone.layer_groups():
            for name, param in group:
                param.requires_grad = name.endswith("bias")

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict[str, Any]]:
        return scaled_param_groups(model, optim, self.options.lr_scale)
