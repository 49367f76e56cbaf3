"""LogME: log of maximum evidence of a Bayesian linear model on the features.

You, Liu, Wang, Long. "LogME: Practical Assessment of Pre-trained Models for
Transfer Learning", ICML 2021.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validation import check_features, check_length, check_target_labels, one_hot

_TINY = np.finfo(np.float64).tiny
_LAMBDA_RANGE = (1e-12, 1e12)


class _Spectrum(NamedTuple):
    """Everything the evidence needs from F, for each target column y.

    ``s``: the k = min(N, D) eigenvalues of FᵀF (the rest are zero);
    ``z2``: [k, C] squared coordinates of each y on the left singular vectors;
    ``outside``: [C] squared norm of the part of y outside F's column space;
    ``n``, ``d``: N and D.
    """

    s: np.ndarray
    z2: np.ndarray
    outside: np.ndarray
    n: int
    d: int


def logme(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    return_params: bool = False,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> float | tuple[float, list[tuple[float, float]]]:
    """LogME score (You et al., ICML 2021); higher means better transferability.

    Each one-hot label column y is a regression target of the Bayesian linear
    model y = F w + ε, w ~ N(0, α⁻¹I), ε ~ N(0, β⁻¹I). Its log evidence is

        L(α, β) = D/2 log α + N/2 log β − N/2 log 2π − β/2 ‖y − Fm‖²
                  − α/2 mᵀm − 1/2 log|A|,   A = αI + βFᵀF,  m = βA⁻¹Fᵀy,

    maximised over (α, β) by the fixed-point iteration
    γ = Σᵢ βσᵢ/(α + βσᵢ), α ← γ/mᵀm, β ← (N − γ)/‖y − Fm‖², with σᵢ the
    eigenvalues of FᵀF. One eigendecomposition of the smaller Gram matrix
    (FᵀF or FFᵀ) is shared by all classes and iterations, which all cost
    O(min(N, D)) per class. Score = (1/C) Σ_c L_c(α_c, β_c) / N.

    If the features explain nothing, the maximum lies at α → ∞ (w = 0); if
    N < D they may interpolate y and it lies at β → ∞. Both limits are finite;
    λ = α/β is bounded, and the iteration stops when neither α nor β changes
    by a relative ``tol`` or after ``max_iter`` steps.

    With ``return_params=True`` returns ``(score, [(α_c, β_c) for each class])``.
    """
    f = check_features(features)
    _, codes, counts = check_target_labels(labels, len(f))
    spectrum = _spectrum(f, one_hot(codes, len(counts)))
    alpha, beta = _maximise(spectrum, tol, max_iter)
    score = float(np.mean(_evidence(spectrum, alpha, beta)) / spectrum.n)
    if return_params:
        return score, [(float(a), float(b)) for a, b in zip(alpha, beta)]
    return score


def logme_evidence(features: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """Log evidence log p(y | F, α, β) by plain dense linear algebra (You et al., 2021).

        log p = D/2 log α + N/2 log β − N/2 log 2π − β/2 ‖y − Fm‖² − α/2 mᵀm
                − 1/2 log|A|,   A = αI + βFᵀF,  m = βA⁻¹Fᵀy.

    A reference for :func:`logme`; costs O(ND² + D³) per call.
    """
    f = check_features(features)
    target = check_features(np.reshape(y, (-1, 1)), "y")[:, 0]
    check_length(len(f), "features", target, "y")
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"alpha and beta must be positive; got alpha={alpha}, beta={beta}")
    n, d = f.shape
    a = alpha * np.eye(d) + beta * (f.T @ f)
    m = beta * np.linalg.solve(a, f.T @ target)
    _, logdet = np.linalg.slogdet(a)
    residual = target - f @ m
    return float(
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual @ residual
        - alpha / 2 * m @ m
        - logdet / 2
    )


def _spectrum(f: np.ndarray, targets: np.ndarray) -> _Spectrum:
    """Project the targets [N, C] on the singular basis of F via one ``eigh``."""
    n, d = f.shape
    if n >= d:
        s, v = np.linalg.eigh(f.T @ f)
        s, keep = _clean(s)
        t = v.T @ (f.T @ targets)  # t = Σ Uᵀ y, so z² = t² / σ
        z2 = np.where(keep[:, None], t**2 / np.where(keep, s, 1.0)[:, None], 0.0)
    else:
        s, u = np.linalg.eigh(f @ f.T)
        s, _ = _clean(s)
        z2 = (u.T @ targets) ** 2
    outside = np.maximum((targets**2).sum(axis=0) - z2.sum(axis=0), 0.0)
    return _Spectrum(s, z2, outside, n, d)


def _clean(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero eigenvalues at round-off level; return them with the kept mask."""
    keep = s > s.max() * len(s) * np.finfo(np.float64).eps
    return np.where(keep, s, 0.0), keep


def _moments(
    sp: _Spectrum, alpha: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return γ, mᵀm and ‖y − Fm‖² per class at (α, β), each of shape [C].

    Written in λ = α/β: βσ/(α + βσ) = σ/(λ + σ), so nothing overflows.
    """
    lam = alpha / beta
    denom = lam + sp.s[:, None]
    gamma = (sp.s[:, None] / denom).sum(axis=0)
    m2 = (sp.s[:, None] * sp.z2 / denom**2).sum(axis=0)
    residual = sp.outside + ((lam / denom) ** 2 * sp.z2).sum(axis=0)
    return gamma, m2, residual


def _maximise(sp: _Spectrum, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """MacKay fixed-point iteration for (α, β), all classes at once.

    λ = α/β is kept within _LAMBDA_RANGE times the largest eigenvalue: when the
    features explain nothing, α → ∞ (w → 0) and the evidence tends to its limit.
    """
    lam_low, lam_high = np.multiply(_LAMBDA_RANGE, sp.s.max() if sp.s.max() > 0 else 1.0)
    alpha = np.ones(sp.z2.shape[1])
    beta = np.ones_like(alpha)
    for _ in range(max_iter):
        gamma, m2, residual = _moments(sp, alpha, beta)
        new_beta = (sp.n - gamma) / np.maximum(residual, _TINY)
        new_alpha = np.clip(gamma / np.maximum(m2, _TINY), lam_low * new_beta, lam_high * new_beta)
        change = np.maximum(np.abs(new_alpha - alpha) / alpha, np.abs(new_beta - beta) / beta)
        alpha, beta = new_alpha, new_beta
        if change.max() < tol:
            break
    return alpha, beta


def _evidence(sp: _Spectrum, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Closed-form log evidence per class at (α, β), evaluated on the spectrum.

    D/2 log α − 1/2 log|A| = −1/2 Σᵢ log(1 + βσᵢ/α), since FᵀF has D − k zero
    eigenvalues; ``log1p`` keeps this exact when α ≫ βσᵢ.
    """
    _, m2, residual = _moments(sp, alpha, beta)
    log_ratio = np.log1p(beta * sp.s[:, None] / alpha).sum(axis=0)
    return (
        sp.n / 2 * np.log(beta)
        - sp.n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual
        - alpha / 2 * m2
        - log_ratio / 2
    )
