"""Transferability scores: predict how well features transfer to a labelled task.

All scores are pure numpy functions where higher means better transferability.
``SCORES`` maps a name to each function that needs only ``(features, labels)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .hscore import hscore
from .leep import leep
from .logme import logme, logme_evidence
from .nce import nce
from .ranking import kendall_tau, weighted_kendall_tau
from .reference import knn_accuracy, linear_probe_accuracy

SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "logme": logme,
    "hscore": hscore,
    "knn_accuracy": knn_accuracy,
    "linear_probe_accuracy": linear_probe_accuracy,
}

__all__ = [
    "SCORES",
    "hscore",
    "kendall_tau",
    "knn_accuracy",
    "leep",
    "linear_probe_accuracy",
    "logme",
    "logme_evidence",
    "nce",
    "weighted_kendall_tau",
]
