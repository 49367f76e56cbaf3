"""The artifact: a self-contained, safe-to-load model directory.

    model/
      transferkit.json    format version, task, label map, backbone source + weights hash,
                          head, strategy, metrics, data provenance, library versions
      head.safetensors    the task head
      encoder/            text: a standard Hugging Face model directory (config, safetensors,
                          tokenizer) that `AutoModel.from_pretrained` loads as is
      backbone.safetensors  vision: the CNN weights (preprocessing settings in the JSON)
      adapter/            LoRA / IA3 / prefix tuning: peft's adapter files, instead of the
                          backbone's weights (the base is rebuilt from its source; adapters.py)
      split.json          the exact data split the model was trained and tested on
      README.md           the model card

An exported artifact (`transferkit export`, see formats.py) has the same layout plus an "export"
entry in transferkit.json and its verification.json; an ONNX export holds `model.onnx` and the
tokenizer instead of the PyTorch weights.

Only safetensors and JSON are read back: nothing is ever unpickled. Writes go to a temporary
sibling directory that is renamed into place, so a crash never leaves a half-written artifact.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from ..errors import ModelError
from ..heads import make_head
from ..io_utils import atomic_dir
from ..model import TransferModel
from ..zoo import backbone_from_artifact
from ..zoo.peft_wrap import adapter_of
from .adapters import load_adapter_backbone, save_adapter

FORMAT = "transferkit-artifact"
FORMAT_VERSION = 1
META_FILE = "transferkit.json"


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("transferkit", "torch", "transformers", "safetensors", "peft"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def save_artifact(directory: Path, model: TransferModel, meta: dict[str, Any], card: str | Callable[[dict], str],
                  extra_files: dict[str, str] | None = None, overwrite: bool = False) -> Path:
    """Write the artifact atomically; `meta` is completed with backbone, head and versions."""
    directory = Path(directory)
    with atomic_dir(directory, overwrite=overwrite) as staging:
        write_artifact(staging, model, meta, card, extra_files)
    return directory


def write_artifact(directory: Path, model: TransferModel, meta: dict[str, Any], card: str | Callable[[dict], str],
                   extra_files: dict[str, str] | None = None) -> None:
    """Write the artifact's files into an existing (staging) directory; see `save_artifact`.

    `card` is the model card, or a function of the complete transferkit.json that renders it.
    A backbone wrapped by peft (LoRA, IA3, prefix) is saved as its adapter only (adapters.py).
    """
    adapter = adapter_of(model.backbone) is not None
    backbone_spec = save_adapter(model.backbone, directory) if adapter else model.backbone.save_weights(directory)
    head_state = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head_state, str(directory / "head.safetensors"))
    full = {
        "format": FORMAT, "format_version": FORMAT_VERSION, **meta,
        "backbone": {**meta.get("backbone", {}), **backbone_spec, "feature_dim": model.backbone.feature_dim},
        "head": {"task": meta["task"], "num_outputs": _num_outputs(model), "dropout": float(model.head.dropout.p)},
        "versions": library_versions(),
    }
    (directory / META_FILE).write_text(json.dumps(full, indent=2, default=str) + "\n", encoding="utf-8")
    (directory / "README.md").write_text(card(full) if callable(card) else card, encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (directory / name).write_text(text, encoding="utf-8")


def _num_outputs(model: TransferModel) -> int:
    return int(model.head.linear.out_features)


def resolve_artifact_dir(path: str | Path) -> Path:
    """Accept the artifact directory itself or a run directory that contains `model/`."""
    path = Path(path).expanduser()
    if (path / META_FILE).is_file():
        return path
    if (path / "model" / META_FILE).is_file():
        return path / "model"
    if not path.exists():
        raise ModelError(f"{path}: model directory not found")
    raise ModelError(f"{path} is not a transferkit artifact (no {META_FILE}); point --model at a run's model/ directory")


def read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{directory / META_FILE}: unreadable ({type(exc).__name__})") from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"{directory}: {META_FILE} is not a transferkit artifact description")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{directory}: artifact format {meta['format_version']} is newer than this transferkit; upgrade")
    return meta


def load_model(path: str | Path) -> tuple[TransferModel, dict[str, Any], Path]:
    """Rebuild the model from an artifact (safetensors + JSON only); returns (model, meta, dir).

    An exported artifact is rebuilt as its format says (int8: re-quantized at load); an ONNX
    export has no PyTorch model and raises ModelError (`transferkit.load` runs it).
    """
    from .formats import artifact_format  # the formats build on this module

    directory = resolve_artifact_dir(path)
    meta = read_meta(directory)
    fmt = artifact_format(meta, directory)
    if fmt.runtime != "torch":
        raise ModelError(f"{directory} is a {fmt.name} export with no PyTorch weights; load it with transferkit.load, "
                         "or use its source artifact (transferkit.json: export.source)")
    if "adapter" in meta["backbone"]:
        backbone = load_adapter_backbone(directory, meta["backbone"])
    else:
        backbone = backbone_from_artifact(directory, meta["backbone"], source=meta["backbone"].get("source", str(directory)))
    head_meta = meta["head"]
    head = make_head(head_meta["task"], backbone.feature_dim, head_meta["num_outputs"], head_meta["dropout"])
    head.load_state_dict(load_file(str(directory / "head.safetensors")))
    model = TransferModel(backbone, head)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return fmt.on_load(model), meta, directory
