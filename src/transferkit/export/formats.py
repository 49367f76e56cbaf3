"""Export formats: what each one is, which backbones it suits, how it is built and how it runs.

    format     method                                                        runs on
    fp32       the model as `transferkit fit` saved it                        PyTorch
    int8       dynamic quantization of the Linear layers (quantize.py)       PyTorch
    onnx       the model exported to an ONNX graph (onnx_export.py)          ONNX Runtime
    onnx-int8  that graph with ONNX Runtime's dynamic int8 quantization      ONNX Runtime
    pruned     global magnitude pruning, optional recovery (prune.py)        PyTorch

An exported artifact names its format in transferkit.json (`"export": {"format": ...}`; an
artifact without it is fp32), and the loaders (artifact.load_model, runtime.load_runtime)
choose how to run it from there. One table, so every format is described in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, ModelError
from ..model import TransferModel
from .onnx_export import build_onnx, build_onnx_int8
from .prune import build_pruned
from .quantize import build_int8, quantize_int8


@dataclass(frozen=True)
class ExportOptions:
    """Settings of one export; only `pruned` reads the pruning ones."""

    sparsity: float = 0.5  # share of Linear/Conv weights set to zero
    recover_epochs: int = 0  # fine-tuning epochs after pruning, on the artifact's training split
    recover_lr: float = 2e-5  # learning rate of that fine-tuning (head and backbone alike)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"--sparsity must be in [0, 1) (the share of weights set to zero), got {self.sparsity}")
        if self.recover_epochs < 0:
            raise ConfigError(f"--recover-epochs must be >= 0, got {self.recover_epochs}")
        if not self.recover_lr > 0:
            raise ConfigError(f"--recover-lr must be > 0, got {self.recover_lr}")


@dataclass
class Source:
    """The artifact being exported: its directory, transferkit.json and PyTorch model."""

    directory: Path
    meta: dict[str, Any]
    model: TransferModel


# A builder turns the source into the export: it returns the PyTorch model to save as the
# artifact's weights (None when it wrote a graph into the staging directory itself) and the
# format's details for transferkit.json.
Builder = Callable[[Source, Path, ExportOptions], tuple[TransferModel | None, dict[str, Any]]]


def _unchanged(model: nn.Module) -> nn.Module:
    return model


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str
    runtime: str  # "torch": rebuilt as a PyTorch model; "onnx": an ONNX Runtime session
    build: Builder | None = None  # None: not an export target (fp32 is what fit saves)
    on_load: Callable[[nn.Module], nn.Module] = _unchanged  # applied to the rebuilt PyTorch model
    modalities: tuple[str, ...] = ("text", "image")
    unsupported_because: str = ""  # why the other modalities are not supported
    float_weights: bool = False  # holds plain float PyTorch weights, so it can be exported further


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("fp32", "the PyTorch model as trained (float32)", "torch", float_weights=True),
    ExportFormat("int8", "PyTorch dynamic int8 quantization of the Linear layers", "torch", build_int8,
                 on_load=quantize_int8, modalities=("text",),
                 unsupported_because="dynamic quantization converts only Linear layers and a CNN computes in its "
                                     "convolutions; use --format onnx-int8"),
    ExportFormat("onnx", "ONNX graph run by ONNX Runtime (float32)", "onnx", build_onnx),
    ExportFormat("onnx-int8", "ONNX graph with ONNX Runtime's dynamic int8 quantization", "onnx", build_onnx_int8),
    ExportFormat("pruned", "global magnitude pruning of Linear/Conv weights (float32)", "torch", build_pruned,
                 float_weights=True),
)}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.build is not None)


def export_format(name: str) -> ExportFormat:
    """The format `transferkit export --format NAME` asks for."""
    if name not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {name!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return FORMATS[name]


def artifact_format(meta: dict[str, Any], directory: Path) -> ExportFormat:
    """The format an artifact was written in (fp32 when it is not an export)."""
    name = meta.get("export", {}).get("format", "fp32")
    if name not in FORMATS:
        raise ModelError(f"{directory}: unknown export format {name!r} in transferkit.json; upgrade transferkit")
    return FORMATS[name]
