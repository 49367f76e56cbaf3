"""The strategy contract and its registry.

A strategy decides *how much of the model changes*: it prepares the model (freezes parameters,
wraps modules), yields optimizer parameter groups (learning-rate multipliers per layer group),
may change what trains at the start of each epoch, and may add loss terms per batch
(`loss = task_loss + Σ λ·transfer_loss`). It never runs the training loop itself.

Strategies register themselves where they live (`@register_strategy`); a spec string selects one
with options: `freeze-bottom:4` (the first option, positionally) or `lora:r=8,alpha=16`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from ..errors import ConfigError
from ..model import TransferModel

STRATEGIES: dict[str, type[Strategy]] = {}


@dataclass
class NoOptions:
    """This strategy takes no options."""


@dataclass
class OptimConfig:
    """What a strategy needs to know to build parameter groups."""

    lr: float
    head_lr: float
    weight_decay: float
    epochs: int


class Strategy:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    uses_feature_cache: ClassVar[bool] = False  # train the head on cached frozen features
    task_loss_weight: float = 1.0  # e.g. (1 − α) when distillation shares the loss with the labels
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")

    def __init__(self, options: Any | None = None) -> None:
        self.options = options if options is not None else self.Options()

    # -- hooks, in the order the loop calls them ---------------------------------------------
    def prepare(self, model: TransferModel) -> None:
        """Set what trains. Default: everything the features use."""
        set_trainable(model, backbone_groups=None)

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict[str, Any]]:
        """Optimizer groups; default: backbone at `lr`, head at `head_lr`, no decay on biases/norms."""
        n_groups = len(model.backbone.layer_groups())
        return layerwise_param_groups(model, optim, [1.0] * n_groups)

    def on_epoch_start(self, model: TransferModel, epoch: int) -> None:
        """Change what trains at an epoch boundary (e.g. gradual unfreezing)."""

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        """Additional weighted loss terms for this batch, by name."""
        return {}

    def schedule_note(self) -> str:
        """How the set of trainable parameters changes during training, if it does."""
        return ""

    def spec(self) -> str:
        """The spec string that recreates this strategy."""
        values = dataclasses.asdict(self.options)
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in values.items()) if values else "")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy {cls.name} registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def parse_strategy(spec: str) -> Strategy:
    """`name`, `name:value` (first option) or `name:key=value,key=value` → a strategy."""
    name, _, argument = spec.partition(":")
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    option_fields = [f for f in fields(cls.Options)]
    values: dict[str, Any] = {}
    for part in filter(None, argument.split(",")):
        key, eq, raw = part.partition("=")
        if not eq:
            if values or not option_fields:
                raise ConfigError(f"strategy {spec!r}: unexpected value {part!r}")
            key, raw = option_fields[0].name, part
        field = next((f for f in option_fields if f.name == key), None)
        if field is None:
            known = ", ".join(f.name for f in option_fields) or "none"
            raise ConfigError(f"strategy {name}: unknown option {key!r} (options: {known})")
        values[key] = _convert(raw, field, spec)
    try:
        return cls(cls.Options(**values))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"strategy {spec!r}: {exc}") from None


def _convert(raw: str, field: dataclasses.Field, spec: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "str")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.lower() in ("1", "true", "yes")
    except ValueError:
        raise ConfigError(f"strategy {spec!r}: {field.name} must be a {kind}, not {raw!r}") from None
    return raw


# -- helpers shared by strategies ----------------------------------------------------------------

def set_trainable(model: TransferModel, backbone_groups: range | list[int] | None) -> None:
    """Head always trains; backbone layer groups listed train (None: all); unused ones never."""
    groups = model.backbone.layer_groups()
    wanted = set(range(len(groups))) if backbone_groups is None else set(backbone_groups)
    for param in model.backbone.parameters():
        param.requires_grad = False
    for index, group in enumerate(groups):
        for _, param in group:
            param.requires_grad = index in wanted
    for param in model.head.parameters():
        param.requires_grad = True


def layerwise_param_groups(model: TransferModel, optim: OptimConfig, multipliers: list[float]) -> list[dict[str, Any]]:
    """One optimizer group per (layer group × decay/no-decay), lr = optim.lr × multiplier.

    All parameters are included, frozen ones too: AdamW skips parameters without gradients, so
    strategies that unfreeze later (gradual unfreezing) need no new optimizer.
    """
    groups: list[dict[str, Any]] = []
    for index, group in enumerate(model.backbone.layer_groups()):
        groups.extend(_split_decay(group, optim.lr * multipliers[index], optim.weight_decay, f"backbone.{index}"))
    groups.extend(_split_decay(list(model.head.named_parameters()), optim.head_lr, optim.weight_decay, "head"))
    return [g for g in groups if g["params"]]


def _split_decay(named: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float, label: str) -> list[dict]:
    # Biases and normalisation weights (1-d tensors) get no weight decay (Loshchilov & Hutter, 2019).
    decay = [p for n, p in named if p.ndim > 1]
    no_decay = [p for n, p in named if p.ndim <= 1]
    return [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "name": f"{label}.decay"},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{label}.no_decay"},
    ]
