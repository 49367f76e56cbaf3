"""Transfer-learning losses: domain adaptation, distillation, continual learning.

Pure functions and small ``nn.Module`` losses; they know nothing about the
training loop and import only torch and each other.
"""
from .continual import EWC, L2SP, estimate_fisher, l2sp_penalty, lwf_loss, snapshot_parameters
from .distill import DistillationConfig, distillation_loss, soft_kl
from .domain import (
    DomainAdversarialLoss,
    DomainDiscriminator,
    GradientReversal,
    GradientReverseLayer,
    MultipleKernelMMD,
    coral_loss,
    dann_lambda,
    mk_mmd,
)

__all__ = [
    "GradientReversal",
    "GradientReverseLayer",
    "dann_lambda",
    "DomainDiscriminator",
    "DomainAdversarialLoss",
    "coral_loss",
    "mk_mmd",
    "MultipleKernelMMD",
    "DistillationConfig",
    "distillation_loss",
    "soft_kl",
    "L2SP",
    "l2sp_penalty",
    "estimate_fisher",
    "EWC",
    "lwf_loss",
    "snapshot_parameters",
]
