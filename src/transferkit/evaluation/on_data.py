"""`transferkit.evaluate`: metrics of a saved artifact on labelled data.

On the artifact's own data, only its saved test split is used (evaluating on training examples
would flatter the model); any other data is evaluated whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data import encode_eval_data, load_source
from ..data.examples import RawData, TaskData
from ..data.examples import Split as _Split
from ..errors import DataError
from .compare import bootstrap_ci
from .metrics import task_metrics
from ..predictor import Predictor


def _reference(predictor: Predictor) -> TaskData:
    empty = _Split([], None, [])
    return TaskData(predictor.modality, predictor.task, predictor.label_names, empty, empty, empty, "artifact")


def artifact_test_split(predictor: Predictor, raw: RawData) -> RawData:
    """The rows of `raw` whose ids are in the artifact's saved test split."""
    split_file = predictor.directory / "split.json"
    wanted = set(json.loads(split_file.read_text())["test"])
    indices = [i for i, example_id in enumerate(raw.ids) if example_id in wanted]
    if not indices:
        raise DataError(f"{raw.origin}: none of the artifact's test examples were found in this data")
    return raw.subset(indices)


def evaluate(model: str | Path, data: str, split: str = "auto", text_column: str | None = None,
             label_column: str | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Metrics of the artifact at `model` on `data` (`split`: auto, test or all)."""
    predictor = Predictor(model, batch_size=batch_size)
    origin = predictor.meta.get("data", {})
    text_column = text_column or origin.get("text_column", "text")
    label_column = label_column or origin.get("label_column", "label")
    parts = load_source(data, predictor.task, text_column, label_column)
    raw = parts.get("test") or parts.get("all") or next(iter(parts.values()))
    own_data = data == origin.get("data")
    if split == "test" or (split == "auto" and own_data):
        raw = artifact_test_split(predictor, raw)
    encoded = encode_eval_data(raw, _reference(predictor))
    outputs = predictor.logits(encoded.items)
    metrics = task_metrics(predictor.task, encoded.targets, outputs, predictor.label_names)
    if predictor.task == "classification":
        metrics["accuracy_ci95"] = bootstrap_ci(outputs.argmax(axis=1) == encoded.targets)
    metrics["data"] = data
    metrics["split"] = "artifact test split" if raw is not parts.get("all") and own_data else "all"
    return metrics
