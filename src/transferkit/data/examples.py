"""In-memory labelled data: what every loader produces and every consumer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RawData:
    """Examples as loaded, before label encoding and splitting.

    `items` are texts (str) or images (file path or uint8 array); `labels` are strings for
    classification or floats for regression; `ids` name each example in its source (row
    number, relative file path, dataset id) so the split can be saved and re-applied.
    """

    items: list[Any]
    labels: list[Any]
    ids: list[str]
    modality: str
    origin: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert len(self.items) == len(self.labels) == len(self.ids)

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: np.ndarray | list[int]) -> RawData:
        return RawData(
            items=[self.items[i] for i in indices], labels=[self.labels[i] for i in indices],
            ids=[self.ids[i] for i in indices], modality=self.modality, origin=self.origin, notes=list(self.notes),
        )


@dataclass
class Split:
    """One split with encoded targets: class indices (int64) or regression targets (float32)."""

    items: list[Any]
    targets: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class TaskData:
    """Train/validation/test splits of one task, with the label map."""

    modality: str
    task: str  # "classification" or "regression"
    label_names: list[str]  # empty for regression
    train: Split
    val: Split
    test: Split
    origin: str
    notes: list[str] = field(default_factory=list)

    @property
    def num_outputs(self) -> int:
        return len(self.label_names) if self.task == "classification" else 1

    def split_record(self, seed: int) -> dict[str, Any]:
        """What split.json stores: enough to rebuild exactly the same split."""
        return {
            "origin": self.origin, "seed": seed, "task": self.task, "label_names": self.label_names,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "train": self.train.ids, "val": self.val.ids, "test": self.test.ids,
        }
