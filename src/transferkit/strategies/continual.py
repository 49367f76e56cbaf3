"""Re-fine-tuning strategies that fight catastrophic forgetting (used by `transferkit update`).

They hold state computed from the previous model version (reference weights, Fisher
information, cached outputs), so `update` builds them directly instead of from a spec string.

- naive / replay: full fine-tuning (replay mixes a stored sample of earlier data into the batches).
- l2sp: L = L_task + α/2·Σ‖w − w_prev‖² (+ β/2·‖w_head‖²) (Li et al., ICML 2018, anchored at the
  previous version instead of the pretrained weights).
- ewc: L = L_task + λ/2·Σ F_i (θ_i − θ*_i)², F the diagonal Fisher information on earlier data
  (Kirkpatrick et al., PNAS 2017).
- lwf: L = L_task + w·T²·KL(softmax(z_old/T) ‖ softmax(z_new[:, :C_old]/T)) on the new inputs
  (Li & Hoiem, ECCV 2016).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses.continual import lwf_loss
from ..model import TransferModel
from .freeze import Full


class PenaltyStrategy(Full):
    """Full fine-tuning plus a penalty module applied to the model's named parameters."""

    def __init__(self, name: str, penalty: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.penalty = penalty

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        return {self.name: self.penalty(model.named_parameters())}

    def spec(self) -> str:
        return self.name


class LwFStrategy(Full):
    """Distil the previous version's outputs (batch['old_logits']) into the old-class logits."""

    name = "lwf"

    def __init__(self, weight: float = 1.0, temperature: float = 2.0) -> None:
        super().__init__()
        self.weight = weight
        self.temperature = temperature

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        old = batch["old_logits"].float()
        return {"lwf": self.weight * lwf_loss(outputs["logits"].float(), old, self.temperature)}

    def spec(self) -> str:
        return f"lwf:weight={self.weight},temperature={self.temperature}"
