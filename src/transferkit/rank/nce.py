"""Negative Conditional Entropy (NCE).

Tran, Nguyen, Hassner. "Transferability and Hardness of Supervised
Classification Tasks", ICCV 2019.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_label_vector, check_probabilities, check_target_labels


def nce(source_labels: np.ndarray, target_labels: np.ndarray) -> float:
    """NCE (Tran et al., ICCV 2019); higher (closer to 0) means better transferability.

        NCE(Y | Z) = −H(Y | Z) = Σ_{y,z} P̂(y, z) log (P̂(y, z) / P̂(z)),

    with P̂ the empirical joint of source labels Z and target labels Y.
    ``source_labels`` is either pseudo-labels [N] (ints) or the source model's
    probabilities [N, Z], in which case Z = argmax of each row.
    """
    z = _source_labels(source_labels)
    _, y, counts = check_target_labels(target_labels, len(z), "source_labels", "target_labels")
    sources, z = np.unique(z, return_inverse=True)
    joint = np.zeros((len(counts), len(sources)))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(z)
    marginal = np.broadcast_to(joint.sum(axis=0), joint.shape)
    present = joint > 0
    return float(np.sum(joint[present] * np.log(joint[present] / marginal[present])))


def _source_labels(source: np.ndarray) -> np.ndarray:
    """Return pseudo-labels [N], taking the argmax of probabilities [N, Z]."""
    array = np.asarray(source)
    if array.ndim == 2:
        return check_probabilities(array, "source_labels").argmax(axis=1)
    return check_label_vector(array, "source_labels")
