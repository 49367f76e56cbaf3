"""int8: PyTorch dynamic quantization of the Linear layers.

Dynamic quantization (PyTorch's `torch.ao.quantization.quantize_dynamic`; the integer arithmetic
of Jacob et al., CVPR 2018): each Linear weight is stored once as int8 with one scale per output
channel, W[i] ≈ s_i · Q[i] with s_i = max|W[i]| / 127.5; each activation X is quantized on the fly,
per batch, from its observed range (X ≈ s_X · (Q_X − z_X), uint8); the product is computed in
int8 with int32 accumulation (fbgemm/oneDNN kernels, VNNI where the CPU has it) and rescaled to
float. Embeddings, LayerNorm and the attention arithmetic stay float32. Nothing needs calibration
data, which suits transformers, whose time is spent in Linear layers.

Which Linear layers: those that do not project down (in_features <= out_features). The down
projections — in a transformer the FFN output layers (and the small task head) — stay float32:
their inputs, the FFN's GELU activations, have the widest, outlier-heavy ranges, which one
per-tensor 8-bit activation scale cannot hold (outliers in transformer FFN activations:
Bondarenko, Nagel & Blankevoort, EMNLP 2021). Measured on the MiniLM benchmark model (600 test
snippets): quantizing every Linear per tensor changed 5.7% of the predictions, per-channel weights
4.0%, per-channel weights with the down projections in float32 1.8%.

Why the artifact stores float32 weights: a quantized Linear keeps its weight in a packed
parameter object that safetensors cannot store and only pickle could. The artifact therefore
keeps the float32 weights (safetensors) plus `"export": {"format": "int8"}`, and loading re-applies
`quantize_dynamic`. That is deterministic: the same float weights give the same int8 tensors
and scales every time, and export verification checks it by loading the artifact in a fresh
process. The price is disk size: the int8 artifact is as large on disk as the fp32 one (in
memory the quantized weights are int8).
Because the activation scale is taken over the whole batch tensor, an example's logits depend
slightly on the batch it is predicted in (verification checks the logits of a default
`transferkit.load`, the batches users get).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from pathlib import Path

    from ..model import TransferModel
    from .formats import ExportOptions, Source


def int8_layers(model: nn.Module) -> list[str]:
    """Names of the Linear layers int8 converts: all but the down projections (see above)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.in_features <= m.out_features]


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` whose `int8_layers` compute in int8 (weights per output channel, symmetric)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with warnings.catch_warnings():
        # torch.ao.quantization warns that it moves to the separate torchao package (whose
        # `quantize_(model, Int8DynamicActivationInt8WeightConfig())` is the successor); it works
        # unchanged in this torch, and users should not see the warning at every load.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        spec = {name: per_channel_dynamic_qconfig for name in int8_layers(model)}
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def build_int8(source: Source, staging: Path, options: ExportOptions) -> tuple[TransferModel, dict[str, Any]]:
    """The source's float weights are saved as they are; loading quantizes them (see above)."""
    converted = int8_layers(source.model)
    kept = sum(isinstance(m, nn.Linear) for m in source.model.modules()) - len(converted)
    details = {"method": "torch.ao.quantization.quantize_dynamic, applied at load",
               "quantized": f"{len(converted)} nn.Linear layers: int8 weights (per output channel), int8 activations "
                            f"(per batch); {kept} down-projecting Linear layers kept float32",
               "stored_weights": "float32 (safetensors); quantized deterministically when loaded"}
    return source.model, details
