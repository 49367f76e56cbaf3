"""Using a trained artifact from Python: `transferkit.load(DIR).predict([...])`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .evaluation.metrics import softmax
from .export.runtime import load_runtime


class Predictor:
    """A loaded artifact: its runtime (PyTorch or ONNX Runtime, as the artifact's format says),
    its preprocessing and its label map."""

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        self.runtime, self.meta, self.directory = load_runtime(path)
        self.batch_size = batch_size
        self.task: str = self.meta["task"]
        self.label_names: list[str] = self.meta.get("label_names", [])
        self.modality: str = self.meta["modality"]

    @property
    def model(self):
        """The PyTorch model in eval mode; an ONNX export has none (ModelError)."""
        if not hasattr(self.runtime, "model"):
            raise ModelError(f"{self.directory} is an ONNX export: it has no PyTorch model; use its source artifact")
        return self.runtime.model

    @property
    def preprocessor(self):
        return self.runtime.preprocessor

    def logits(self, items: Sequence[Any]) -> np.ndarray:
        """Raw outputs: class logits [N, C] or regression values [N, 1]."""
        return self.runtime.logits(list(items), self.batch_size)

    def predict(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        """One dict per item: {label, probabilities} (classification) or {value} (regression)."""
        if len(items) == 0:
            return []
        outputs = self.logits(items)
        if self.task == "regression":
            return [{"value": float(v)} for v in outputs[:, 0]]
        probabilities = softmax(outputs)
        return [
            {"label": self.label_names[int(row.argmax())],
             "probabilities": {name: float(p) for name, p in zip(self.label_names, row)}}
            for row in probabilities
        ]

    def predict_stream(self, items: Iterable[Any], chunk_size: int = 512) -> Iterator[dict[str, Any]]:
        """Predict an unbounded stream in chunks: constant memory, results in input order."""
        for chunk in chunked(items, chunk_size):
            yield from self.predict(chunk)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` consecutive items (itertools.batched arrives only in Python 3.12)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load(path: str | Path, batch_size: int = 64) -> Predictor:
    """Load an artifact directory (or a run directory containing `model/`)."""
    return Predictor(path, batch_size=batch_size)
