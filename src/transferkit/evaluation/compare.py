"""BEFORE vs AFTER on the same test examples, with a paired bootstrap confidence interval.

Paired bootstrap (Efron & Tibshirani, 1993; Koehn, EMNLP 2004 for comparing two systems on one
test set): resample test examples with replacement B times, recompute the metric of both models
on the SAME resample, and take the 2.5th/97.5th percentiles of the difference. Pairing removes
the variance both models share (easy and hard examples), so the interval is much tighter than
comparing two independent intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def paired_bootstrap_delta(
    before_correct: np.ndarray, after_correct: np.ndarray, n_resamples: int = 2000, seed: int = 0,
) -> dict[str, Any]:
    """Mean and 95% CI of mean(after) − mean(before) for per-example scores (e.g. correctness)."""
    before = np.asarray(before_correct, dtype=np.float64)
    after = np.asarray(after_correct, dtype=np.float64)
    if before.shape != after.shape or before.ndim != 1 or len(before) == 0:
        raise ValueError("need two equally long, non-empty per-example score vectors")
    rng = np.random.default_rng(seed)
    difference = after - before
    samples = rng.integers(0, len(difference), size=(n_resamples, len(difference)))
    deltas = difference[samples].mean(axis=1)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {"mean": float(difference.mean()), "ci95": [float(low), float(high)], "n_resamples": n_resamples}


def bootstrap_ci(scores: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap CI of the mean of per-example scores (e.g. accuracy)."""
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, len(scores), size=(n_resamples, len(scores)))].mean(axis=1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def verdict(delta: dict[str, Any], metric: str = "accuracy") -> str:
    """A plain-language reading of a delta CI."""
    low, high = delta["ci95"]
    if low > 0:
        return f"AFTER is better: {metric} +{delta['mean']:.3f} (95% CI {low:+.3f} to {high:+.3f})."
    if high < 0:
        return f"AFTER is WORSE than BEFORE: {metric} {delta['mean']:+.3f} (95% CI {low:+.3f} to {high:+.3f})."
    return (f"AFTER is not clearly better: {metric} {delta['mean']:+.3f}, and the 95% CI ({low:+.3f} to {high:+.3f}) "
            "includes zero.")
