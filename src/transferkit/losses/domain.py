"""Domain-adaptation losses: gradient reversal / DANN, Deep CORAL and MK-MMD.

Each object here is a small, loop-agnostic building block: it maps feature
tensors to a scalar loss and knows nothing about optimisers or schedules.

References
----------
* Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation",
  ICML 2015; Ganin et al., "Domain-Adversarial Training of Neural Networks",
  JMLR 17, 2016 (DANN, gradient reversal layer).
* Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
  Adaptation", ECCV Workshops 2016.
* Long, Cao, Wang & Jordan, "Learning Transferable Features with Deep
  Adaptation Networks", ICML 2015 (DAN, multi-kernel MMD).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn
import torch.nn.functional as F

__all__ = [
    "GradientReversal",
    "GradientReverseLayer",
    "dann_lambda",
    "DomainDiscriminator",
    "DomainAdversarialLoss",
    "coral_loss",
    "mk_mmd",
    "MultipleKernelMMD",
]


class GradientReversal(torch.autograd.Function):
    """Gradient reversal R_λ (Ganin & Lempitsky, 2015).

    Forward: R_λ(x) = x.  Backward: ∂R_λ/∂x = −λ·I, i.e. the incoming
    gradient g becomes −λ·g.  λ is not differentiated.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float) -> Tensor:  # type: ignore[override]
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad_output.neg() * ctx.coeff, None


class GradientReverseLayer(nn.Module):
    """Module wrapper of :class:`GradientReversal` with a settable ``coeff`` (λ)."""

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x: Tensor) -> Tensor:
        return GradientReversal.apply(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN adaptation schedule λ_p = 2 / (1 + exp(−γ·p)) − 1 (Ganin et al., 2016).

    ``progress`` p ∈ [0, 1] is the fraction of training done (clamped);
    λ_0 = 0 and λ_p → 1 as p grows, which suppresses noisy early
    discriminator gradients.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DomainDiscriminator(nn.Module):
    """Domain classifier D: feature_dim → hidden → ReLU → dropout → hidden → ReLU
    → dropout → 1 logit (logit > 0 ⇔ "source")."""

    def __init__(self, feature_dim: int, hidden_dim: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of shape (N,)."""
        return self.net(x).squeeze(-1)


class DomainAdversarialLoss(nn.Module):
    """DANN domain-adversarial loss (Ganin et al., JMLR 2016).

    With d_i = 1 for source and 0 for target features,

        L_adv = ½ [ BCE(D(R_λ(f_s)), 1) + BCE(D(R_λ(f_t)), 0) ]

    Minimising L_adv trains D to tell domains apart while, through the
    gradient reversal R_λ, the feature extractor receives −λ·∇ and so learns
    domain-invariant features.  The discriminator accuracy of the last call is
    stored in ``last_domain_accuracy`` (a float, for logging).
    """

    def __init__(self, discriminator: nn.Module, coeff: float = 1.0) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.grl = GradientReverseLayer(coeff)
        self.last_domain_accuracy: float = float("nan")

    def forward(self, f_source: Tensor, f_target: Tensor, lambda_: float | None = None) -> Tensor:
        if lambda_ is not None:
            self.grl.coeff = float(lambda_)
        features = self.grl(torch.cat([f_source, f_target], dim=0))
        logits = self.discriminator(features).reshape(-1)
        n_s = f_source.shape[0]
        logit_s, logit_t = logits[:n_s], logits[n_s:]
        loss = 0.5 * (
            F.binary_cross_entropy_with_logits(logit_s, torch.ones_like(logit_s))
            + F.binary_cross_entropy_with_logits(logit_t, torch.zeros_like(logit_t))
        )
        with torch.no_grad():
            correct = (logit_s > 0).float().mean() + (logit_t <= 0).float().mean()
            self.last_domain_accuracy = float(correct / 2)
        return loss


def _covariance(x: Tensor) -> Tensor:
    """Unbiased covariance of the rows of ``x`` (N × d), divisor N − 1."""
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"CORAL needs at least 2 samples per domain, got {n}")
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / (n - 1)


def coral_loss(f_source: Tensor, f_target: Tensor) -> Tensor:
    """Deep CORAL loss (Sun & Saenko, ECCV-W 2016).

        L_CORAL = ‖C_S − C_T‖²_F / (4 d²)

    with C the unbiased (N − 1) feature covariance and d the feature dim.
    Batch sizes of the two domains may differ.
    """
    if f_source.shape[1:] != f_target.shape[1:]:
        raise ValueError("source and target features must have the same dimension")
    d = f_source.shape[1]
    diff = _covariance(f_source) - _covariance(f_target)
    return (diff * diff).sum() / (4.0 * d * d)


def _pairwise_sq_dist(z: Tensor) -> Tensor:
    """‖z_i − z_j‖² for all row pairs, clamped at 0 (smooth gradient at i = j)."""
    sq_norm = (z * z).sum(dim=1)
    return (sq_norm[:, None] + sq_norm[None, :] - 2.0 * z @ z.T).clamp_min(0.0)


def mk_mmd(
    f_s: Tensor,
    f_t: Tensor,
    kernel_mults: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
    kernel_weights: Sequence[float] | None = None,
) -> Tensor:
    """Multi-kernel MMD² (Long et al., ICML 2015, DAN), biased V-statistic.

        k(x, y)   = Σ_u β_u exp(−‖x − y‖² / σ_u),  σ_u = m_u · mean_{i≠j}‖z_i − z_j‖²
        MMD²(S,T) = mean k(S,S) + mean k(T,T) − 2 mean k(S,T)

    where z ranges over the pooled batch, m_u ∈ ``kernel_mults`` and β_u are
    ``kernel_weights`` (default uniform 1/#kernels).  The bandwidth is a
    detached statistic.  Works with unequal source / target batch sizes and
    is symmetric in its arguments.
    """
    n_s = f_s.shape[0]
    z = torch.cat([f_s, f_t], dim=0).flatten(1)
    n = z.shape[0]
    sq_dist = _pairwise_sq_dist(z)
    with torch.no_grad():
        base = sq_dist.sum() / max(n * n - n, 1)
        base = base.clamp_min(1e-12)
    if kernel_weights is None:
        kernel_weights = [1.0 / len(kernel_mults)] * len(kernel_mults)
    if len(kernel_weights) != len(kernel_mults):
        raise ValueError("kernel_weights and kernel_mults must have the same length")
    kernel = sum(w * torch.exp(-sq_dist / (base * m)) for w, m in zip(kernel_weights, kernel_mults))
    k_ss = kernel[:n_s, :n_s].mean()
    k_tt = kernel[n_s:, n_s:].mean()
    k_st = kernel[:n_s, n_s:].mean()
    return k_ss + k_tt - 2.0 * k_st


class MultipleKernelMMD(nn.Module):
    """Module form of :func:`mk_mmd` (DAN, Long et al., ICML 2015)."""

    def __init__(
        self,
        kernel_mults: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
        kernel_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.kernel_mults = tuple(float(m) for m in kernel_mults)
        self.kernel_weights = None if kernel_weights is None else tuple(float(w) for w in kernel_weights)

    def forward(self, f_s: Tensor, f_t: Tensor) -> Tensor:
        return mk_mmd(f_s, f_t, self.kernel_mults, self.kernel_weights)
