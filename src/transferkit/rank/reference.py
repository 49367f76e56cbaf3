"""Reference accuracies: cross-validated k-NN and linear probe on the features.

These are what the transferability scores try to predict cheaply; they are
ordinary scikit-learn pipelines, evaluated by stratified k-fold accuracy.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ._validation import check_features, check_target_labels


def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, k: int = 5, folds: int = 5, seed: int = 0
) -> float:
    """Mean stratified ``folds``-fold accuracy of a k-NN classifier.

    Features are standardised (per-dimension z-score fitted on the training
    fold) and neighbours are found by cosine distance 1 − ⟨a, b⟩/(‖a‖‖b‖).
    """
    f, codes = _check_cv_inputs(features, labels, folds)
    smallest_train = len(f) - -(-len(f) // folds)
    if not 1 <= k <= smallest_train:
        raise ValueError(
            f"k must be in 1..{smallest_train} for {folds}-fold CV on {len(f)} samples; got {k}"
        )
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k, metric="cosine"))
    return _cv_accuracy(model, f, codes, folds, seed)


def linear_probe_accuracy(
    features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0
) -> float:
    """Mean stratified ``folds``-fold accuracy of an L2 logistic regression (C = 1).

    Features are standardised on each training fold before fitting.
    """
    f, codes = _check_cv_inputs(features, labels, folds)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return _cv_accuracy(model, f, codes, folds, seed)


def _check_cv_inputs(
    features: np.ndarray, labels: np.ndarray, folds: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs; every class needs at least ``folds`` samples."""
    f = check_features(features)
    classes, codes, counts = check_target_labels(labels, len(f))
    if folds < 2:
        raise ValueError(f"folds must be at least 2; got {folds}")
    smallest = int(np.argmin(counts))
    if counts[smallest] < folds:
        raise ValueError(
            f"class {classes[smallest]} has only {counts[smallest]} samples; "
            f"{folds}-fold CV needs at least {folds} per class"
        )
    return f, codes


def _cv_accuracy(model: Pipeline, f: np.ndarray, codes: np.ndarray, folds: int, seed: int) -> float:
    """Stratified CV accuracy with the shuffling fixed by ``seed``."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(model, f, codes, cv=splitter, scoring="accuracy")))
