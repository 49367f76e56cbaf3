"""Domain adaptation as strategies: full fine-tuning plus a loss that aligns source and target.

Each strategy reads `batch["domain"]` (0 source, 1 target; batches are domain-balanced) and the
pooled features of the batch, and adds one weighted term to the task loss:

- `dann`  — domain-adversarial training (Ganin et al., JMLR 2016): a discriminator D predicts
  the domain of features through a gradient-reversal layer, L = L_task + λ_p·BCE(D(R(f)), d),
  with λ_p = 2/(1+exp(−γp)) − 1 rising over training progress p.
- `coral` — Deep CORAL (Sun & Saenko, ECCV-W 2016): L = L_task + λ·‖C_s − C_t‖²_F / (4d²).
- `mmd`   — multi-kernel MMD (Long et al., ICML 2015): L = L_task + λ·MK-MMD²(f_s, f_t).
- `joint` — joint training on labelled source and target: L = L_s + λ·L_t (the target term
  covers the target examples whose labels the learner may see).

The algorithms themselves live in `transferkit.losses.domain`; these classes only wire them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data.domains import SOURCE, TARGET, UNLABELLED
from ..losses.domain import DomainAdversarialLoss, DomainDiscriminator, coral_loss, dann_lambda, mk_mmd
from ..model import TransferModel
from .base import OptimConfig, Strategy, register_strategy
from .freeze import Full


@dataclass
class AlignmentOptions:
    weight: float = field(default=1.0, metadata={"help": "λ: weight of the alignment loss"})

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError("weight must be >= 0")


def _split_by_domain(features: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return features[domain == SOURCE], features[domain == TARGET]


class _Alignment(Full):
    """Full fine-tuning + weight · alignment(f_source, f_target); needs ≥ 2 examples per domain."""

    Options = AlignmentOptions

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        f_s, f_t = _split_by_domain(outputs["features"].float(), batch["domain"])
        if len(f_s) < 2 or len(f_t) < 2:
            return {}
        return {self.name: self.options.weight * self.alignment(f_s, f_t)}

    def alignment(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_strategy
class Coral(_Alignment):
    name = "coral"
    summary = "Deep CORAL: align source and target feature covariances"

    def alignment(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return coral_loss(f_s, f_t)


@register_strategy
class MMD(_Alignment):
    name = "mmd"
    summary = "multi-kernel MMD between source and target features"

    def alignment(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return mk_mmd(f_s, f_t)


@dataclass
class DANNOptions:
    weight: float = field(default=1.0, metadata={"help": "maximum weight of the adversarial loss"})
    gamma: float = field(default=10.0, metadata={"help": "steepness of the λ_p = 2/(1+exp(−γp)) − 1 schedule"})
    total_steps: int = field(default=0, metadata={"help": "steps of the whole run (set by `adapt`); 0: λ at its maximum"})
    steps_per_epoch: int = field(default=0, metadata={"help": "steps per epoch (set by `adapt`), so a resumed run continues the schedule"})
    hidden: int = field(default=256, metadata={"help": "hidden width of the domain discriminator"})

    def __post_init__(self) -> None:
        if self.weight < 0 or self.gamma <= 0 or self.total_steps < 0 or self.steps_per_epoch < 0 or self.hidden < 1:
            raise ValueError("weight >= 0, gamma > 0, total_steps >= 0, steps_per_epoch >= 0 and hidden >= 1 are required")


@register_strategy
class DANN(Full):
    name = "dann"
    summary = "domain-adversarial training with a gradient-reversal layer"
    Options = DANNOptions

    def __init__(self, options: DANNOptions | None = None) -> None:
        super().__init__(options)
        self.steps_seen = 0

    def prepare(self, model: TransferModel) -> None:
        super().prepare(model)
        if "domain_adversary" not in model.aux:
            discriminator = DomainDiscriminator(model.backbone.feature_dim, hidden_dim=self.options.hidden)
            model.aux["domain_adversary"] = DomainAdversarialLoss(discriminator)

    def on_epoch_start(self, model: TransferModel, epoch: int) -> None:
        self.steps_seen = epoch * self.options.steps_per_epoch

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict]:
        adversary = list(model.aux["domain_adversary"].parameters())
        return [*super().param_groups(model, optim),
                {"params": adversary, "lr": optim.head_lr, "weight_decay": optim.weight_decay, "name": "aux.domain_adversary"}]

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        f_s, f_t = _split_by_domain(outputs["features"].float(), batch["domain"])
        if not model.training or len(f_s) == 0 or len(f_t) == 0:
            return {}
        progress = self.steps_seen / self.options.total_steps if self.options.total_steps else 1.0
        self.steps_seen += 1
        lambda_p = self.options.weight * dann_lambda(min(progress, 1.0), self.options.gamma)
        return {"dann": model.aux["domain_adversary"](f_s, f_t, lambda_p)}


@dataclass
class JointOptions:
    weight: float = field(default=1.0, metadata={"help": "λ in L_s + λ·L_t"})

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError("weight must be >= 0")


@register_strategy
class Joint(Full):
    name = "joint"
    summary = "joint source + target training, L_s + λ·L_t"
    Options = JointOptions
    task_loss_weight = 0.0  # replaced by the two domain terms below

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        logits, labels, domain = outputs["logits"].float(), batch["labels"].long(), batch["domain"]
        parts = {}
        for name, which, weight in (("source_loss", SOURCE, 1.0), ("target_loss", TARGET, self.options.weight)):
            rows = (domain == which) & (labels != UNLABELLED)
            if rows.any():
                parts[name] = weight * F.cross_entropy(logits[rows], labels[rows])
        return parts
