"""H-score, plain and with Ledoit–Wolf shrinkage.

Bao, Li, Huang, Li, Zhong, Zhang. "An Information-Theoretic Approach to
Transferability in Task Transfer Learning", ICIP 2019.
Ibrahim, Ponomareva, Mazumder. "Newer is not always better: Rethinking
transferability metrics, their peculiarities, stability and performance",
ECML PKDD 2022 (shrinkage-regularised variant).
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from ._validation import check_features, check_target_labels

# Covariance eigenvalues below this fraction of the largest are treated as zero
# (singular-value ratio 1e-5): far above the round-off floor of float32 or
# float64 features, so rank-deficient features get an exact pseudo-inverse.
PINV_RTOL = 1e-10


def hscore(features: np.ndarray, labels: np.ndarray, shrinkage: bool = True) -> float:
    """H-score (Bao et al., ICIP 2019); higher means better transferability.

        H(f) = tr(cov(f)⁻¹ cov(E[f | y]))

    where E[f | y] replaces every sample by the mean feature of its class, so
    cov(E[f | y]) = Σ_c (n_c/N)(μ_c − μ)(μ_c − μ)ᵀ (both covariances use 1/N).
    The plain score applies the pseudo-inverse of cov(f) (relative cut-off
    ``PINV_RTOL``), so noise-free features score exactly C − 1. With
    ``shrinkage=True`` (Ibrahim et al., 2022) cov(f) is replaced by the
    Ledoit–Wolf estimate Σ_ρ = (1 − ρ) cov(f) + ρ (tr cov(f)/D) I, and the score is

        H_ρ(f) = tr(Σ_ρ⁻¹ (1 − ρ) cov(E[f | y])).
    """
    f = check_features(features)
    _, codes, counts = check_target_labels(labels, len(f))
    centered = f - f.mean(axis=0)
    between = _scaled_class_means(centered, codes, counts)
    if shrinkage:
        estimator = LedoitWolf(assume_centered=True).fit(centered)
        cov, scale = estimator.covariance_, 1.0 - estimator.shrinkage_
    else:
        cov, scale = centered.T @ centered / len(f), 1.0
    solved = np.linalg.pinv(cov, rtol=PINV_RTOL, hermitian=True) @ between.T
    return float(scale * np.sum(between.T * solved))


def _scaled_class_means(centered: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows √(n_c/N)·(μ_c − μ), so that cov(E[f | y]) = BᵀB."""
    sums = np.zeros((len(counts), centered.shape[1]))
    np.add.at(sums, codes, centered)
    means = sums / counts[:, None]
    return np.sqrt(counts / len(centered))[:, None] * means
