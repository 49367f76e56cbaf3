"""How an artifact runs: one small protocol, with the implementation chosen from transferkit.json.

A runtime has the artifact's `preprocessor` and `logits(items, batch_size) -> [N, outputs]`;
`Predictor` (what `transferkit.load` and `transferkit predict` use) talks only to this, so
fp32, int8, pruned and ONNX artifacts all predict through the same code: encode once, batch by
length, pad per batch, results in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..data.batching import EncodedDataset, make_collate
from ..errors import ModelError
from ..inference import model_logits, run_batches
from ..zoo.base import Preprocessor
from .artifact import load_model, read_meta, resolve_artifact_dir
from .formats import artifact_format
from .onnx_export import load_preprocessing


class Runtime(Protocol):
    @property
    def preprocessor(self) -> Preprocessor: ...

    def logits(self, items: Sequence[Any], batch_size: int) -> np.ndarray: ...


class TorchRuntime:
    """A PyTorch model (fp32, pruned, or int8 re-quantized at load)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @property
    def preprocessor(self) -> Preprocessor:
        return self.model.backbone.preprocessor

    def logits(self, items: Sequence[Any], batch_size: int) -> np.ndarray:
        return model_logits(self.model, self.preprocessor, list(items), batch_size)


class OnnxRuntime:
    """An ONNX graph in an ONNX Runtime session (CPU, default threads and graph optimisations)."""

    def __init__(self, graph: Path, preprocessor: Preprocessor) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._preprocessor = preprocessor

    @property
    def preprocessor(self) -> Preprocessor:
        return self._preprocessor

    def _run(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: batch[name].numpy() for name in self.input_names}
        return torch.from_numpy(self.session.run(["logits"], feeds)[0])

    def logits(self, items: Sequence[Any], batch_size: int) -> np.ndarray:
        dataset = EncodedDataset.build(self._preprocessor, list(items), None)
        return run_batches(self._run, dataset, make_collate(self._preprocessor), batch_size)


def load_runtime(path: str | Path) -> tuple[Runtime, dict[str, Any], Path]:
    """The runtime of the artifact at `path` (or a run directory holding `model/`), its meta and directory."""
    directory = resolve_artifact_dir(path)
    meta = read_meta(directory)
    if artifact_format(meta, directory).runtime == "onnx":
        spec = meta["export"]
        if not (directory / spec["graph"]).is_file():
            raise ModelError(f"{directory}: the ONNX graph {spec['graph']} is missing; export the model again")
        return OnnxRuntime(directory / spec["graph"], load_preprocessing(directory, spec["preprocessing"])), meta, directory
    model, meta, directory = load_model(directory)
    return TorchRuntime(model), meta, directory
