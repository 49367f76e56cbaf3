"""Seeded, stratified splitting and subsampling (scikit-learn's `train_test_split`)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import DataError
from .examples import RawData


def holdout(data: RawData, fraction: float, seed: int, stratify: bool, what: str) -> tuple[RawData, RawData]:
    """Split off `fraction` of `data` (stratified by label for classification)."""
    indices = np.arange(len(data))
    count = max(1, int(round(fraction * len(data))))
    if len(data) - count < 1:
        raise DataError(f"{data.origin}: too few examples ({len(data)}) to hold out a {what} split")
    labels = data.labels if stratify and _can_stratify(data.labels, count) else None
    keep, held = train_test_split(indices, test_size=count, random_state=seed, stratify=labels)
    return data.subset(sorted(keep)), data.subset(sorted(held))


def subsample(data: RawData, size: int, seed: int, stratify: bool) -> RawData:
    """At most `size` examples, keeping the class proportions."""
    if size >= len(data):
        return data
    keep, _ = holdout(data, (len(data) - size) / len(data), seed, stratify, "subsample")
    return keep


def _can_stratify(labels: list, count: int) -> bool:
    counts = Counter(labels)
    return min(counts.values()) >= 2 and count >= len(counts) and len(labels) - count >= len(counts)
