"""Rebuild a backbone from the spec an artifact saved (never from a hub, never unpickling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from ..errors import ModelError
from .base import Backbone
from .text import HFTextBackbone
from .vision import EfficientNetBackbone, TinyCNNBackbone


def backbone_from_artifact(directory: Path, spec: dict[str, Any], source: str) -> Backbone:
    family = spec.get("family")
    if family == "hf-text":
        return HFTextBackbone.from_directory(Path(directory) / spec["path"], source, spec.get("max_length", 128))
    if family == "efficientnet":
        backbone: Backbone = EfficientNetBackbone(spec["arch"], source=source, image_size=spec["image_size"])
    elif family == "tiny-cnn":
        backbone = TinyCNNBackbone(source=source, image_size=spec["image_size"], width=spec["width"])
    else:
        raise ModelError(f"{directory}: unknown backbone family {family!r} in transferkit.json")
    backbone.load_state_dict(load_file(str(Path(directory) / spec["weights"])))
    return backbone
