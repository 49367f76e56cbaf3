"""Knowledge distillation as a strategy: a teacher's soft predictions train the student.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015, arXiv:1503.02531):

    L = α · T² · KL( softmax(z_t / T) ‖ softmax(z_s / T) ) + (1 − α) · CE(y, z_s)

The loop already computes CE(y, z_s) with the head's loss, so this strategy weighs it by
`task_loss_weight = 1 − α` and adds the soft term `kd = α · T² · KL` per batch from the teacher's
logits, which every batch carries as `batch["teacher_logits"]` (computed once, before training,
by `transferkit distill`). Rows of an unlabelled transfer set have label −100: the CE skips them,
the KD term uses them. What trains, and at which learning rates, is the wrapped (inner)
strategy's decision: `full` by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..losses.distill import DistillationConfig, soft_kl
from ..model import TransferModel
from ..zoo.base import Backbone
from .base import OptimConfig, Strategy, parse_strategy, register_strategy

TEACHER_LOGITS = "teacher_logits"


@dataclass
class DistillationOptions(DistillationConfig):
    """Temperature T and weight α of the loss (validated by DistillationConfig), and the inner strategy."""

    inner: str = field(default="full", metadata={"help": "adaptation strategy of the student, e.g. full, freeze-bottom:4"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inner.partition(":")[0] == Distillation.name:
            raise ValueError("the inner strategy of distill cannot be distill itself")


@register_strategy
class Distillation(Strategy):
    """Hinton et al. (2015): L = α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α)·CE(y, z_s)."""

    name = "distill"
    summary = "knowledge distillation from a teacher's logits (use `transferkit distill`)"
    Options = DistillationOptions
    batch_fields = (TEACHER_LOGITS,)
    usage = " (a teacher's logits): run `transferkit distill --teacher DIR` instead"

    def __init__(self, options: DistillationOptions | None = None) -> None:
        super().__init__(options)
        self.inner = parse_strategy(self.options.inner)
        self.task_loss_weight = 1.0 - self.options.alpha

    # What trains is the inner strategy's business.
    @property
    def uses_feature_cache(self) -> bool:  # type: ignore[override]
        return self.inner.uses_feature_cache

    @property
    def modalities(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.modalities

    @property
    def trains_pretrained_weights(self) -> bool:  # type: ignore[override]
        return self.inner.trains_pretrained_weights

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        self.inner.check(backbone, optim)

    def prepare(self, model: TransferModel) -> None:
        self.inner.prepare(model)

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict[str, Any]]:
        return self.inner.param_groups(model, optim)

    def on_epoch_start(self, model: TransferModel, epoch: int) -> None:
        self.inner.on_epoch_start(model, epoch)

    def schedule_note(self) -> str:
        return self.inner.schedule_note()

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        """The inner strategy's terms plus kd = α · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T))."""
        teacher = batch.get(TEACHER_LOGITS)
        if teacher is None:
            raise ConfigError(f"strategy distill: the batch has no {TEACHER_LOGITS}{self.usage}")
        temperature, alpha = self.options.temperature, self.options.alpha
        kd = soft_kl(outputs["logits"].float(), teacher.float(), temperature)
        return {**self.inner.extra_losses(model, batch, outputs), "kd": alpha * temperature**2 * kd}
