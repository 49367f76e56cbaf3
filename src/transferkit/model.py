"""The adapted model: a backbone and a task head. `forward` returns a dict (the step contract)."""

from __future__ import annotations

import torch
from torch import nn

from .zoo.base import Backbone


class TransferModel(nn.Module):
    """backbone → pooled features → head.

    A batch that already carries `features` (cached frozen features) skips the backbone, which
    is how `linear-probe` trains its head on features computed once.
    """

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # Modules a strategy trains alongside (e.g. a domain discriminator): part of the model, so
        # optimizers, checkpoints and Accelerate see them, but never saved in the artifact.
        self.aux = nn.ModuleDict()
        # Layer groups [0, frozen_bottom) are frozen for the whole run (freeze-bottom:K): they run
        # in eval mode, and their output may be computed once (frozen.py).
        self.frozen_bottom = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = batch["features"] if "features" in batch else self.backbone(batch)
        return {"logits": self.head(features), "features": features}

    def task_loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head.loss(outputs["logits"], batch["labels"])

    def train(self, mode: bool = True) -> TransferModel:
        """Like nn.Module.train, but frozen normalisation layers and a frozen bottom stay in eval mode.

        A frozen BatchNorm must not keep updating its running statistics from the new data, or
        the "frozen" backbone drifts anyway (the classic linear-probe-on-a-CNN pitfall). A frozen
        bottom (freeze-bottom:K) is a fixed function of the input, without dropout, so computing
        it once gives exactly what computing it every step would.
        """
        super().train(mode)
        if mode:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    params = list(module.parameters(recurse=False))
                    if params and not any(p.requires_grad for p in params):
                        module.eval()
            for module in self.backbone.bottom_modules(self.frozen_bottom):
                module.eval()
        return self

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, total
