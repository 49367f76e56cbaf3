"""Input validation shared by the transferability scores.

Every check raises :class:`ValueError` with a one-line message naming the
offending argument (and row or class where that helps).
"""

from __future__ import annotations

import numpy as np

PROBABILITY_ATOL = 1e-6


def check_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    """Return ``features`` as a finite float64 array of shape [N, D]."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, D]; got shape {array.shape}")
    _check_finite(array, name)
    return array


def check_probabilities(probs: np.ndarray, name: str = "source_probs") -> np.ndarray:
    """Return ``probs`` as a float64 array [N, Z] of rows on the probability simplex."""
    array = check_features(probs, name)
    negative = (array < 0).any(axis=1)
    if negative.any():
        raise ValueError(f"{name} contain negative values at row {int(np.argmax(negative))}")
    sums = array.sum(axis=1)
    off = np.abs(sums - 1.0) > PROBABILITY_ATOL
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(f"{name} rows must sum to 1; row {row} sums to {sums[row]:.6g}")
    return array


def check_length(n_expected: int, expected_name: str, array: np.ndarray, name: str) -> None:
    """Raise if ``array`` does not have ``n_expected`` rows."""
    if len(array) != n_expected:
        raise ValueError(
            f"length mismatch: {expected_name} has {n_expected} rows but {name} has {len(array)}"
        )


def check_label_vector(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array of non-negative integers."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array [N]; got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be integers; got dtype {array.dtype}")
    if array.dtype.kind == "f" and not _is_integral(array):
        raise ValueError(f"{name} must be integers; got non-integral values")
    if (array < 0).any():
        raise ValueError(f"{name} must be non-negative integers")
    return array.astype(np.int64)


def check_target_labels(
    labels: np.ndarray, n_samples: int, other: str = "features", name: str = "labels"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate target labels and encode them as 0..C-1.

    Returns ``(classes, codes, counts)``: the distinct label values, each
    sample's index into ``classes`` and the number of samples per class.
    Requires at least 2 classes and at least 2 samples in every class.
    """
    array = check_label_vector(labels, name)
    check_length(n_samples, other, array, name)
    classes, codes, counts = np.unique(array, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"{name} contain only 1 class; at least 2 are needed")
    singletons = np.flatnonzero(counts < 2)
    if singletons.size:
        raise ValueError(
            f"class {classes[singletons[0]]} has only 1 sample; every class needs at least 2"
        )
    return classes, codes, counts


def one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Return the [N, C] float64 indicator matrix of ``codes`` in 0..C-1."""
    return np.eye(n_classes)[codes]


def _check_finite(array: np.ndarray, name: str) -> None:
    bad_rows = ~np.isfinite(array).all(axis=1)
    if bad_rows.any():
        raise ValueError(f"{name} contain NaN or inf at row {int(np.argmax(bad_rows))}")


def _is_integral(array: np.ndarray) -> bool:
    return bool(np.isfinite(array).all() and (array == np.round(array)).all())
