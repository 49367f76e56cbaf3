"""Task metrics from predictions (scikit-learn / scipy), as plain JSON-able dicts."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, mean_squared_error
from sklearn.metrics import precision_recall_fscore_support, r2_score

HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "loss": False, "rmse": False, "mae": False, "spearman": True, "r2": True}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def classification_metrics(targets: np.ndarray, logits: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    predictions = logits.argmax(axis=1)
    labels = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predictions, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(targets, predictions)),
        "macro_f1": float(f1_score(targets, predictions, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(targets, predictions, labels=labels).tolist(),
        "n": int(len(targets)),
    }


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, Spearman's ρ and R² of predictions against targets."""
    predictions = predictions.reshape(-1)
    # Spearman's rho is undefined for constant inputs (e.g. the training-mean baseline); skip
    # scipy's ConstantInputWarning and report 0 below.
    defined = len(targets) > 1 and np.ptp(targets) > 0 and np.ptp(predictions) > 0
    rho = spearmanr(targets, predictions).statistic if defined else float("nan")
    return {
        "mae": float(mean_absolute_error(targets, predictions)),
        "rmse": float(np.sqrt(mean_squared_error(targets, predictions))),
        "spearman": float(rho) if np.isfinite(rho) else 0.0,
        "r2": float(r2_score(targets, predictions)) if len(targets) > 1 else 0.0,
        "n": int(len(targets)),
    }


def task_metrics(task: str, targets: np.ndarray, outputs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    if task == "regression":
        return regression_metrics(targets, outputs)
    return classification_metrics(targets, outputs, label_names)


def headline(task: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The few numbers shown in tables and history."""
    keys = ("accuracy", "macro_f1") if task == "classification" else ("rmse", "mae", "spearman")
    return {k: metrics[k] for k in keys}
