"""Log Expected Empirical Prediction (LEEP).

Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate
Transferability of Learned Representations", ICML 2020.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_probabilities, check_target_labels, one_hot


def leep(source_probs: np.ndarray, target_labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., ICML 2020); higher (closer to 0) means better transferability.

    With θ(x_i) the source model's probabilities over its Z classes:

        P̂(y, z) = 1/N Σ_i θ(x_i)_z 1[y_i = y],   P̂(y | z) = P̂(y, z) / Σ_y' P̂(y', z),
        LEEP = 1/N Σ_i log Σ_z P̂(y_i | z) θ(x_i)_z.
    """
    theta = check_probabilities(source_probs, "source_probs")
    _, y, counts = check_target_labels(target_labels, len(theta), "source_probs", "target_labels")
    joint = one_hot(y, len(counts)).T @ theta / len(theta)
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = (theta @ conditional.T)[np.arange(len(y)), y]
    return float(np.mean(np.log(expected)))
