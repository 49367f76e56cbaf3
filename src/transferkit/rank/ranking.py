"""Rank correlation between transferability scores and achieved accuracies."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, weightedtau


def kendall_tau(scores: np.ndarray, accuracies: np.ndarray) -> float:
    """Kendall's τ_b between scores and accuracies over M models (scipy.stats.kendalltau).

        τ = (P − Q) / √((P + Q + T_s)(P + Q + T_a)),

    with P, Q the concordant and discordant pairs and T_s, T_a ties in one
    variable only. 1 means the score ranks the models exactly as accuracy does.
    """
    s, a = _check_pair(scores, accuracies)
    return float(kendalltau(s, a).statistic)


def weighted_kendall_tau(scores: np.ndarray, accuracies: np.ndarray) -> float:
    """Weighted Kendall's τ (Vigna, WWW 2015) via scipy.stats.weightedtau.

    An exchange between elements of ranks r and s (decreasing order) has weight
    1/(r + 1) + 1/(s + 1), averaged over ranking by scores and by accuracies,
    so disagreements among the top models (the ones one would pick) count more.
    """
    s, a = _check_pair(scores, accuracies)
    return float(weightedtau(s, a).statistic)


def _check_pair(scores: np.ndarray, accuracies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return both as finite 1-D float arrays of one common length ≥ 2."""
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(accuracies, dtype=np.float64)
    if s.ndim != 1 or a.ndim != 1 or len(s) != len(a) or len(s) < 2:
        raise ValueError(
            "scores and accuracies must be 1-D of one length >= 2; "
            f"got shapes {s.shape} and {a.shape}"
        )
    if not (np.isfinite(s).all() and np.isfinite(a).all()):
        raise ValueError("scores and accuracies must be finite")
    return s, a
