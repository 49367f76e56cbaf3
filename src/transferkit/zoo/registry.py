"""The model zoo: named, packaged pretrained sources, plus explicit `dir:` and `hf:` prefixes.

Entries register themselves with `@register_model` (timm's pattern): adding a model touches
this file's neighbours only, never a central enum. A name without a prefix is looked up here;
`dir:PATH` is a local Hugging Face directory and `hf:ORG/NAME` a Hub id, so a path and a hub
id can never be confused with a zoo name.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from .base import Backbone


@dataclass(frozen=True)
class ZooEntry:
    name: str
    modality: str
    description: str
    packages: tuple[str, ...]  # what to pip install; shown when missing
    build: Callable[..., Backbone]  # build(max_length=..., image_size=...) -> Backbone
    is_installed: Callable[[], bool]
    weights_path: Callable[[], Path | None]  # for size/params listings; None when not a file
    pretrained: bool = True

    def install_hint(self) -> str:
        if not self.packages:
            return "built in"
        return "pip install " + " ".join(self.packages)


ZOO: dict[str, ZooEntry] = {}


def register_model(entry: ZooEntry) -> ZooEntry:
    if entry.name in ZOO:
        raise ValueError(f"model {entry.name} registered twice")
    ZOO[entry.name] = entry
    return entry


def load_backbone(spec: str, max_length: int = 128, image_size: int | None = None) -> Backbone:
    """Resolve a model spec (zoo name, dir:PATH, hf:ORG/NAME) to a ready backbone."""
    from .text import HFTextBackbone

    if spec.startswith("dir:"):
        path = Path(spec[4:]).expanduser()
        if not path.is_dir():
            raise ModelError(f"{spec}: directory not found")
        return HFTextBackbone.from_directory(path, source=spec, max_length=max_length)
    if spec.startswith("hf:"):
        repo = spec[3:]
        if not repo or repo.count("/") > 1:
            raise ModelError(f"{spec}: expected hf:ORG/NAME")
        return HFTextBackbone.from_hub(repo, max_length=max_length)
    entry = resolve_entry(spec)
    kwargs = {"max_length": max_length} if entry.modality == "text" else {"image_size": image_size}
    return entry.build(**{k: v for k, v in kwargs.items() if v is not None})


def resolve_entry(spec: str) -> ZooEntry:
    """The installed zoo entry named `spec`; ModelError saying how to fix an unknown or missing one."""
    entry = ZOO.get(spec)
    if entry is None:
        known = ", ".join(sorted(ZOO))
        raise ModelError(
            f"unknown model {spec!r}; known: {known} (use dir:PATH for a local model, hf:ORG/NAME for the Hub)"
        )
    if not entry.is_installed():
        raise ModelError(f"model {spec} is not installed; {entry.install_hint()}")
    return entry


def spec_modality(spec: str) -> str:
    """The modality of a model spec without loading it; the same errors as load_backbone."""
    if spec.startswith("dir:"):
        if not Path(spec[4:]).expanduser().is_dir():
            raise ModelError(f"{spec}: directory not found")
        return "text"  # dir: and hf: are Hugging Face text encoders
    if spec.startswith("hf:"):
        return "text"
    return resolve_entry(spec).modality


def has_module(module: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(module) is not None
