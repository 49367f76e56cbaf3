"""A backbone's module wrapped by the `peft` library: wrap, find, reload, merge.

The backbone says which of its attributes peft wraps (`Backbone.peft_spec().module`: the HF
encoder, the EfficientNet, the tiny CNN's blocks); the wrapper replaces that attribute, so the
backbone's forward, preprocessing and layer groups keep working (layer groups read parameter
names through `plain_name`). peft is imported only when something is actually wrapped: it
takes seconds to import.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from .base import Backbone

ADAPTABLE = (nn.Linear, nn.Conv2d)  # exact types peft's LoRA and IA3 layers wrap here


def adapter_of(backbone: Backbone) -> Any | None:
    """The PeftModel inside `backbone`, or None when nothing is wrapped."""
    if "peft" not in sys.modules:  # nothing can be wrapped before peft was imported
        return None
    from peft import PeftModel

    spec = backbone.peft_spec()
    module = getattr(backbone, spec.module, None) if spec is not None else None
    return module if isinstance(module, PeftModel) else None


def _spec(backbone: Backbone):
    spec = backbone.peft_spec()
    if spec is None:
        raise ConfigError(f"{backbone.source}: parameter-efficient methods (peft) do not apply to this backbone")
    return spec


def wrap(backbone: Backbone, config: Any) -> Any:
    """Wrap the backbone's peft module with a new adapter described by a peft config."""
    from peft import get_peft_model

    spec = _spec(backbone)
    wrapped = get_peft_model(getattr(backbone, spec.module), config)
    setattr(backbone, spec.module, wrapped)
    return wrapped


def load_adapter(backbone: Backbone, directory: Path) -> Any:
    """Wrap the backbone's peft module with the adapter saved in `directory` (inference mode)."""
    from peft import PeftModel

    spec = _spec(backbone)
    wrapped = PeftModel.from_pretrained(getattr(backbone, spec.module), str(directory))
    setattr(backbone, spec.module, wrapped)
    return wrapped


def merge_adapter(backbone: Backbone) -> None:
    """Fold the adapter into the base weights (W = W₀ + s·B·A) and drop the wrapper."""
    adapter = adapter_of(backbone)
    if adapter is None:
        raise ConfigError(f"{backbone.source}: no adapter to merge")
    setattr(backbone, _spec(backbone).module, adapter.merge_and_unload())


def check_targets(backbone: Backbone, method: str, targets: tuple[str, ...]) -> list[nn.Module]:
    """The modules `targets` select (peft's rule: the name, or a name ending in "." + target);
    a ConfigError naming the adaptable modules when a target matches nothing or a wrong type."""
    spec = _spec(backbone)
    if not targets:
        raise ConfigError(f"{method}: no default target modules for {backbone.source}; give targets=NAME/NAME")
    modules = dict(getattr(backbone, spec.module).named_modules())
    adaptable = _adaptable_names(modules)
    selected: list[nn.Module] = []
    for target in targets:
        hits = [module for name, module in modules.items() if name and (name == target or name.endswith("." + target))]
        if not hits:
            raise ConfigError(f"{method}: {backbone.source} has no module named {target!r}; "
                              f"adaptable modules: {', '.join(adaptable)}")
        wrong = [type(m).__name__ for m in hits if type(m) not in ADAPTABLE]
        if wrong:
            raise ConfigError(f"{method}: {target!r} in {backbone.source} is a {wrong[0]}, which {method} cannot adapt; "
                              f"adaptable modules: {', '.join(adaptable)}")
        selected.extend(hits)
    return selected


def _adaptable_names(modules: dict[str, nn.Module]) -> list[str]:
    """Short names users can pass as targets (the last name part, or two when it is a number)."""
    names = []
    for name, module in modules.items():
        if type(module) in ADAPTABLE:
            parts = name.split(".")
            names.append(".".join(parts[-2:]) if parts[-1].isdigit() else parts[-1])
    return list(dict.fromkeys(names))
