"""onnx and onnx-int8: the model as an ONNX graph, run by ONNX Runtime.

The graph takes the collated batch tensors — `input_ids` and `attention_mask` (int64, [batch,
sequence]) for text, `pixel_values` (float32, [batch, 3, size, size]) for images — and returns
`logits` [batch, classes]; batch and sequence axes are dynamic, so the Predictor's per-batch
padding and length bucketing carry over unchanged. It is exported with PyTorch's torch.export-based
ONNX exporter (`torch.onnx.export(dynamo=True)`), which captures the graph symbolically rather
than by tracing one example, so no input-dependent branch is frozen into it. Tokenisation and
image preprocessing stay in Python: the tokenizer (text) or the resize/normalise settings
(images) are saved alongside the graph.

onnx-int8 is ONNX Runtime's dynamic quantization of that graph
(`onnxruntime.quantization.quantize_dynamic`): the weights of MatMul, Conv and embedding (Gather)
nodes become int8 with one scale per output channel, activations are quantized per batch at run
time (uint8), and the integer products run in MatMulInteger/ConvInteger kernels — the method of
PyTorch's dynamic quantization (quantize.py), in ONNX Runtime's kernels and with the graph
optimisations (operator fusion) it applies at load. Per-channel scales matter: on the MiniLM
benchmark model (600 test snippets) they cut the predictions changed by quantization from 4.0%
to 1.3%. Weights use a 7-bit range (`reduce_range=True`, as PyTorch's fbgemm backend does): on
x86 CPUs without VNNI (AVX2 only) the u8×s8 kernels add pairs of products in saturating 16-bit
lanes, and full-range weights overflow there. On such a CPU the tiny test model's max |Δ logit|
fell from 0.185 to 0.006 with it (5 of 48 predictions flipped without it, none with it); an
artifact may be served on a CPU other than the one that exported it, so the safe range is the
default.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..zoo.base import Preprocessor

if TYPE_CHECKING:
    from ..model import TransferModel
    from .formats import ExportOptions, Source

GRAPH_FILE = "model.onnx"
TOKENIZER_DIR = "tokenizer"
SAMPLE_TEXTS = ["an export sample", "a longer export sample, so that the two rows need padding"]


class LogitsGraph(nn.Module):
    """What the ONNX graph computes: named batch tensors in, logits out."""

    def __init__(self, model: TransferModel, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.input_names, tensors)))["logits"]


def sample_batch(model: TransferModel) -> dict[str, torch.Tensor]:
    """Two example inputs of different lengths, so no axis can be mistaken for a constant."""
    pre = model.backbone.preprocessor
    if model.backbone.modality == "text":
        return pre.collate(pre.encode(SAMPLE_TEXTS))
    size = pre.image_size
    return pre.collate(pre.encode([np.zeros((size, size, 3), np.uint8), np.full((size, size, 3), 255, np.uint8)]))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and the quantizer print progress, warnings and advice; keep CLI output clean."""
    root = logging.getLogger()
    # A handler on the root logger keeps `logging.warning` from installing a stderr handler for good.
    guard = logging.NullHandler()
    root.addHandler(guard)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(guard)


def export_graph(model: TransferModel, path: Path) -> dict[str, Any]:
    """Write `model` as an ONNX graph with dynamic batch (and sequence) axes; returns its details."""
    import onnx
    from torch.export import Dim

    batch = sample_batch(model)
    names = list(batch)
    batch_dim, sequence_dim = Dim("batch"), Dim("sequence")
    axes = tuple({0: batch_dim} if batch[n].ndim != 2 else {0: batch_dim, 1: sequence_dim} for n in names)
    model.eval()
    with _quiet(), torch.no_grad():
        torch.onnx.export(LogitsGraph(model, names).eval(), tuple(batch[n] for n in names), str(path),
                          input_names=names, output_names=["logits"], dynamic_shapes={"tensors": axes},
                          dynamo=True, external_data=False, verbose=False)
    opset = next(o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))
    return {"graph": GRAPH_FILE, "inputs": names, "outputs": ["logits"], "opset": int(opset),
            "exporter": "torch.onnx.export(dynamo=True)"}


def quantize_graph(source: Path, target: Path) -> dict[str, Any]:
    """ONNX Runtime's dynamic int8 quantization of the graph at `source`, written to `target`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return {"quantization": "onnxruntime.quantization.quantize_dynamic, int8 weights (per output channel, "
                            "7-bit range), uint8 activations (per batch)"}


def save_preprocessing(pre: Preprocessor, modality: str, directory: Path) -> dict[str, Any]:
    """Write what turns raw items into the graph's inputs; returns its settings for transferkit.json."""
    if modality == "text":
        return {"modality": "text", "path": TOKENIZER_DIR, **pre.save(directory / TOKENIZER_DIR)}
    return {"modality": "image", **pre.save(directory)}


def load_preprocessing(directory: Path, spec: dict[str, Any]) -> Preprocessor:
    """Rebuild the preprocessor `save_preprocessing` described (tokenizer, or image settings)."""
    if spec["modality"] == "text":
        from transformers import AutoTokenizer

        from ..zoo.text import TokenizerPreprocessor, quiet_transformers

        quiet_transformers()
        return TokenizerPreprocessor(AutoTokenizer.from_pretrained(directory / spec["path"]), spec["max_length"])
    from ..zoo.vision import ImagePreprocessor

    return ImagePreprocessor(spec["image_size"], spec["mean"], spec["std"])


def build_onnx(source: Source, staging: Path, options: ExportOptions) -> tuple[None, dict[str, Any]]:
    details = export_graph(source.model, staging / GRAPH_FILE)
    pre = source.model.backbone.preprocessor
    return None, {**details, "preprocessing": save_preprocessing(pre, source.model.backbone.modality, staging)}


def build_onnx_int8(source: Source, staging: Path, options: ExportOptions) -> tuple[None, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="transferkit-onnx-") as scratch:
        fp32 = Path(scratch) / GRAPH_FILE
        details = export_graph(source.model, fp32)
        details.update(quantize_graph(fp32, staging / GRAPH_FILE))
    pre = source.model.backbone.preprocessor
    return None, {**details, "preprocessing": save_preprocessing(pre, source.model.backbone.modality, staging)}
