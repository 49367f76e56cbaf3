"""From a config's data options to encoded train/val/test splits, with every check users need."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .builtin import load_builtin
from .examples import RawData, Split, TaskData
from .images import read_image_folder
from .splits import holdout, subsample
from .tables import read_table


def load_source(spec: str, task: str, text_column: str, label_column: str) -> dict[str, RawData]:
    """Load `builtin:NAME`, an image folder, or a table; {'all': ...} or predefined splits."""
    if spec.startswith("builtin:"):
        return {"all": load_builtin(spec[len("builtin:"):], task)}
    path = Path(spec).expanduser()
    if path.is_dir():
        return read_image_folder(path)
    if not path.exists():
        raise DataError(f"{spec}: file not found (for a built-in dataset write builtin:NAME)")
    return {"all": read_table(path, text_column, label_column)}


def prepare_task_data(
    data: str | None = None, train: str | None = None, val: str | None = None, test: str | None = None, *,
    task: str = "classification", text_column: str = "text", label_column: str = "label",
    val_fraction: float = 0.1, test_fraction: float = 0.2, train_size: int | None = None, seed: int = 0,
) -> TaskData:
    """Load, split (stratified, seeded), subsample and encode the labelled data of one task."""
    load = lambda spec: load_source(spec, task, text_column, label_column)  # noqa: E731
    if data is not None:
        parts = load(data)
    else:
        parts = {"train": _single(load(train), train)}
        parts.update({name: _single(load(spec), spec) for name, spec in (("val", val), ("test", test)) if spec})
    stratify = task == "classification"
    if "all" in parts:
        if stratify:
            _require_examples_per_class(parts["all"], minimum=3)
        rest, test_part = holdout(parts["all"], test_fraction, seed, stratify, "test")
        train_part, val_part = holdout(rest, val_fraction / (1 - test_fraction), seed, stratify, "validation")
    else:
        train_part = parts["train"]
        test_part = parts.get("test")
        if test_part is None:
            train_part, test_part = holdout(train_part, test_fraction, seed, stratify, "test")
        val_part = parts.get("val")
        if val_part is None:
            train_part, val_part = holdout(train_part, val_fraction, seed, stratify, "validation")
    if train_size is not None:
        train_part = subsample(train_part, train_size, seed, stratify)
    return encode_splits(train_part, val_part, test_part, task)


def encode_splits(train: RawData, val: RawData, test: RawData, task: str) -> TaskData:
    for name, part in (("training", train), ("validation", val), ("test", test)):
        if len(part) == 0:
            raise DataError(f"{part.origin}: the {name} split is empty")
    modalities = {train.modality, val.modality, test.modality}
    if len(modalities) > 1:
        raise DataError(f"splits mix modalities: {', '.join(sorted(modalities))}")
    if task == "regression":
        label_names: list[str] = []
        encode = lambda part: _regression_targets(part)  # noqa: E731
    else:
        label_names = sorted({str(label) for label in train.labels})
        if len(label_names) < 2:
            raise DataError(f"{train.origin}: the training data has a single class ({label_names[0]!r}); need at least 2")
        index = {name: i for i, name in enumerate(label_names)}
        encode = lambda part: _class_targets(part, index)  # noqa: E731
    notes = list(dict.fromkeys(train.notes + val.notes + test.notes))
    splits = {name: Split(part.items, encode(part), part.ids) for name, part in (("train", train), ("val", val), ("test", test))}
    return TaskData(train.modality, task, label_names, splits["train"], splits["val"], splits["test"], train.origin, notes)


def encode_eval_data(raw: RawData, reference: TaskData) -> Split:
    """Encode extra evaluation data (e.g. another domain) with an existing task's label map."""
    if reference.task == "regression":
        return Split(raw.items, _regression_targets(raw), raw.ids)
    if raw.modality != reference.modality:
        raise DataError(f"{raw.origin}: {raw.modality} data cannot evaluate a {reference.modality} model")
    index = {name: i for i, name in enumerate(reference.label_names)}
    return Split(raw.items, _class_targets(raw, index), raw.ids)


def _require_examples_per_class(data: RawData, minimum: int) -> None:
    """Splitting into train/val/test needs a few examples of every class, or a class vanishes."""
    counts = Counter(str(label) for label in data.labels)
    scarce = sorted(name for name, count in counts.items() if count < minimum)
    if scarce:
        shown = ", ".join(f"{name!r} ({counts[name]})" for name in scarce[:5]) + (" ..." if len(scarce) > 5 else "")
        raise DataError(f"{data.origin}: class(es) {shown} have fewer than {minimum} examples, too few to split "
                        "into train/validation/test; add examples, drop the class, or give --train/--val/--test files")


def _single(parts: dict[str, RawData], spec: Any) -> RawData:
    if set(parts) != {"all"}:
        raise DataError(f"{spec}: give a single file or class folder to --train/--val/--test, not split folders")
    return parts["all"]


def _class_targets(part: RawData, index: dict[str, int]) -> np.ndarray:
    unknown = sorted({str(label) for label in part.labels} - set(index))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise DataError(
            f"{part.origin}: label(s) {shown} never appear in the training data (known: {', '.join(index)})"
        )
    return np.array([index[str(label)] for label in part.labels], dtype=np.int64)


def _regression_targets(part: RawData) -> np.ndarray:
    values = []
    for label, example_id in zip(part.labels, part.ids):
        try:
            value = float(label)
        except (TypeError, ValueError):
            raise DataError(f"{part.origin} row {example_id}: label {label!r} is not a number (--task regression)") from None
        if not math.isfinite(value):
            raise DataError(f"{part.origin} row {example_id}: label {label!r} is not finite")
        values.append(value)
    return np.array(values, dtype=np.float32)
