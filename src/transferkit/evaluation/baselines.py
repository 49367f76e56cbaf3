"""BEFORE models: what the pretrained model achieves without adaptation.

- Linear probe on frozen features (scikit-learn): standardised features → logistic regression
  (classification) or ridge regression, with the regularisation strength chosen on the
  validation split, so the "before" is a fair, tuned baseline rather than a strawman.
- Majority class / training mean: the reference for `linear-probe` runs, whose AFTER already is a
  linear probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

C_GRID = (0.01, 0.1, 1.0, 10.0)


@dataclass
class Baseline:
    description: str
    predict: object  # Callable[[np.ndarray features], np.ndarray logits-or-values]


def _score(model, features: np.ndarray, targets: np.ndarray, task: str) -> float:
    predictions = model.predict(features)
    if task == "classification":
        return float((predictions == targets).mean())
    return -float(np.sqrt(np.mean((predictions - targets) ** 2)))


def linear_probe_baseline(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                          task: str, seed: int = 0) -> Baseline:
    """Fit on train, pick the regularisation on validation; returns a log-probability predictor."""
    best, best_score, best_c = None, -np.inf, None
    for c in C_GRID:
        if task == "classification":
            estimator = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        else:
            estimator = Ridge(alpha=1.0 / c)
        model = make_pipeline(StandardScaler(), estimator).fit(train_x, train_y)
        score = _score(model, val_x, val_y, task)
        if score > best_score:
            best, best_score, best_c = model, score, c
    if task == "classification":
        n_classes = int(train_y.max()) + 1

        def predict(x: np.ndarray) -> np.ndarray:
            # Columns follow the classes seen in training; unseen classes get -inf log-probability.
            log_probs = np.full((len(x), n_classes), -np.inf)
            log_probs[:, best.classes_] = np.log(np.clip(best.predict_proba(x), 1e-12, None))
            return log_probs

        kind = "logistic regression"
    else:
        def predict(x: np.ndarray) -> np.ndarray:
            return best.predict(x).reshape(-1, 1)

        kind = "ridge regression"
    return Baseline(f"linear probe on frozen features ({kind}, C={best_c} chosen on validation)", predict)


def majority_baseline(train_y: np.ndarray, task: str) -> Baseline:
    if task == "classification":
        counts = np.bincount(train_y)
        log_probs = np.log(np.maximum(counts / counts.sum(), 1e-12))
        return Baseline(
            "majority class of the training data (AFTER is itself a linear probe)",
            lambda x: np.tile(log_probs, (len(x), 1)),
        )
    mean = float(np.mean(train_y))
    return Baseline("training-set mean (AFTER is itself a linear probe)", lambda x: np.full((len(x), 1), mean))
