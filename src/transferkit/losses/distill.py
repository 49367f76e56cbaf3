"""Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge
in a Neural Network", NIPS Deep Learning Workshop 2015, arXiv:1503.02531).

    L = α · T² · KL( softmax(z_t / T) ‖ softmax(z_s / T) ) + (1 − α) · CE(y, z_s)

The T² factor keeps the soft-target gradient magnitude roughly independent of
the temperature.  KL uses ``reduction='batchmean'`` (sum over classes, mean over
the batch).  Labels may be missing for an unlabelled transfer set: ``None`` or
rows equal to ``ignore_index`` (−100) are excluded from the CE term, which is 0
when no row is labelled.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor
import torch.nn.functional as F

__all__ = ["DistillationConfig", "distillation_loss", "soft_kl"]

IGNORE_INDEX = -100


def _validate(temperature: float, alpha: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


@dataclass
class DistillationConfig:
    """Hyper-parameters of :func:`distillation_loss`."""

    temperature: float = field(
        default=2.0, metadata={"help": "softmax temperature T > 0 for teacher and student"}
    )
    alpha: float = field(
        default=0.5, metadata={"help": "weight α ∈ [0, 1] of the soft (KD) term; 1 − α weighs the hard CE"}
    )

    def __post_init__(self) -> None:
        _validate(self.temperature, self.alpha)


def soft_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL( softmax(z_t / T) ‖ softmax(z_s / T) ), batch-mean, *without* the T² factor.

    The teacher is detached: gradients flow only into the student.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def _masked_ce(student_logits: Tensor, labels: Tensor | None, ignore_index: int) -> Tensor:
    """Mean CE over labelled rows; 0 (still attached to the graph) if none are labelled."""
    if labels is None:
        return student_logits.sum() * 0.0
    mask = labels != ignore_index
    if not bool(mask.any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[mask], labels[mask])


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> dict[str, Tensor]:
    """Hinton et al. (2015) distillation loss.

    Returns ``{'loss': α·T²·kd + (1 − α)·ce, 'kd': KL term (no T²), 'ce': CE term}``.
    Raises ``ValueError`` for temperature ≤ 0, α ∉ [0, 1] or mismatched shapes.
    """
    _validate(temperature, alpha)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student/teacher logits shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    kd = soft_kl(student_logits, teacher_logits, temperature)
    ce = _masked_ce(student_logits, labels, ignore_index)
    loss = alpha * temperature**2 * kd + (1.0 - alpha) * ce
    return {"loss": loss, "kd": kd, "ce": ce}
