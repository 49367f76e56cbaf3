"""The strategy contract, its registry, and modifiers that compose with any strategy.

A strategy decides *how much of the model changes*: it prepares the model (freezes parameters,
wraps modules), yields optimizer parameter groups (learning-rate multipliers per layer group),
may change what trains at the start of each epoch, and may add loss terms per batch
(`loss = task_loss + Σ λ·transfer_loss`). It never runs the training loop itself.

Strategies register themselves where they live (`@register_strategy`); a spec string selects one
with options: `freeze-bottom:4` (the first option, positionally) or `lora:r=8,alpha=16`.
A *modifier* (`@register_modifier`) adds to a strategy without replacing it, joined with `+`:
`full+l2sp:alpha=0.01,beta=0.01` — one more loss term, or reshaped parameter groups.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..errors import ConfigError
from ..model import TransferModel

if TYPE_CHECKING:
    from ..config import FitConfig
    from ..zoo.base import Backbone

STRATEGIES: dict[str, type[Strategy]] = {}
MODIFIERS: dict[str, type[Modifier]] = {}


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
    layer_decay: float = 1.0  # layer group g of G trains at lr · layer_decay^(G−1−g)

    @classmethod
    def from_config(cls, cfg: FitConfig) -> OptimConfig:
        return cls(lr=cfg.lr, head_lr=cfg.head_lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                   layer_decay=cfg.layer_decay)


class Strategy:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    uses_feature_cache: ClassVar[bool] = False  # train the head on cached frozen features
    trains_pretrained_weights: ClassVar[bool] = True  # False: the pretrained weights stay frozen
    task_loss_weight: float = 1.0  # e.g. (1 − α) when distillation shares the loss with the labels
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")

    def __init__(self, options: Any | None = None) -> None:
        self.options = options if options is not None else self.Options()

    # -- hooks, in the order the pipeline and the loop call them -----------------------------
    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        """Refuse, with a ConfigError, what cannot work on this backbone, before anything is written."""

    def prepare(self, model: TransferModel) -> None:
        """Set what trains. Default: everything the features use. Called more than once (the
        pipeline counts parameters, the loop prepares again): must be idempotent."""
        set_trainable(model, backbone_groups=None)

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict[str, Any]]:
        """Optimizer groups; default: backbone at `lr` (× layer decay), head at `head_lr`."""
        n_groups = len(model.backbone.layer_groups())
        return layerwise_param_groups(model, optim, layer_multipliers(n_groups, optim.layer_decay))

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
        return _spec(self.name, self.options)


class Modifier:
    """Adds to any strategy it suits: a loss term, reshaped parameter groups, or both."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def check(self, strategy: Strategy, backbone: Backbone, optim: OptimConfig) -> None:
        """Refuse a strategy this modifier cannot work with (ConfigError)."""

    def attach(self, model: TransferModel) -> None:
        """After the strategy prepared the model (e.g. snapshot the starting weights); idempotent."""

    def param_groups(self, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return groups

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        return {}

    def spec(self) -> str:
        return _spec(self.name, self.options)


class Composed(Strategy):
    """A strategy with modifiers: `base+modifier+modifier`. What trains is the base's decision."""

    def __init__(self, base: Strategy, modifiers: list[Modifier]) -> None:
        super().__init__(base.options)
        self.base, self.modifiers = base, modifiers
        self.name, self.summary = base.name, base.summary
        self.uses_feature_cache = base.uses_feature_cache
        self.trains_pretrained_weights = base.trains_pretrained_weights
        self.modalities, self.task_loss_weight = base.modalities, base.task_loss_weight
        self.batch_fields = getattr(base, "batch_fields", ())

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        self.base.check(backbone, optim)
        for modifier in self.modifiers:
            modifier.check(self.base, backbone, optim)

    def prepare(self, model: TransferModel) -> None:
        self.base.prepare(model)
        for modifier in self.modifiers:
            modifier.attach(model)

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict[str, Any]]:
        groups = self.base.param_groups(model, optim)
        for modifier in self.modifiers:
            groups = modifier.param_groups(groups)
        return groups

    def on_epoch_start(self, model: TransferModel, epoch: int) -> None:
        self.base.on_epoch_start(model, epoch)

    def extra_losses(self, model: TransferModel, batch: dict, outputs: dict) -> dict[str, torch.Tensor]:
        terms = dict(self.base.extra_losses(model, batch, outputs))
        for modifier in self.modifiers:
            terms.update(modifier.extra_losses(model, batch, outputs))
        return terms

    def schedule_note(self) -> str:
        return self.base.schedule_note()

    def spec(self) -> str:
        return "+".join([self.base.spec(), *(m.spec() for m in self.modifiers)])


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy {cls.name} registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def register_modifier(cls: type[Modifier]) -> type[Modifier]:
    if cls.name in MODIFIERS:
        raise ValueError(f"modifier {cls.name} registered twice")
    MODIFIERS[cls.name] = cls
    return cls


def parse_strategy(spec: str) -> Strategy:
    """`name[:options]` optionally followed by `+modifier[:options]` … → a strategy.

    Options are `value` (the first option) or `key=value,key=value`.
    """
    base_spec, *modifier_specs = spec.split("+")
    strategy = _build(base_spec, STRATEGIES, "strategy")
    if not modifier_specs:
        return strategy
    return Composed(strategy, [_build(part, MODIFIERS, "modifier") for part in modifier_specs])


def _build(spec: str, registry: dict[str, type], kind: str) -> Any:
    name, _, argument = spec.partition(":")
    cls = registry.get(name)
    if cls is None:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry)) or 'none'}")
    option_fields = [f for f in fields(cls.Options)]
    values: dict[str, Any] = {}
    for part in filter(None, argument.split(",")):
        key, eq, raw = part.partition("=")
        if not eq:
            if values or not option_fields:
                raise ConfigError(f"{kind} {spec!r}: unexpected value {part!r}")
            key, raw = option_fields[0].name, part
        field = next((f for f in option_fields if f.name == key), None)
        if field is None:
            known = ", ".join(f.name for f in option_fields) or "none"
            raise ConfigError(f"{kind} {name}: unknown option {key!r} (options: {known})")
        values[key] = _convert(raw, field, spec, kind)
    try:
        return cls(cls.Options(**values))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{kind} {spec!r}: {exc}") from None


def _spec(name: str, options: Any) -> str:
    values = dataclasses.asdict(options)
    return name + (":" + ",".join(f"{k}={v}" for k, v in values.items()) if values else "")


def _convert(raw: str, field: dataclasses.Field, spec: str, kind_of_spec: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "str")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.lower() in ("1", "true", "yes")
    except ValueError:
        raise ConfigError(f"{kind_of_spec} {spec!r}: {field.name} must be a {kind}, not {raw!r}") from None
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


def layer_multipliers(n_groups: int, decay: float) -> list[float]:
    """Layer-wise learning-rate decay (ULMFiT's discriminative fine-tuning, Howard & Ruder 2018;
    layer-wise decay as in ELECTRA/BEiT): group g of G gets decay^(G−1−g), the top group 1."""
    return [decay ** (n_groups - 1 - g) for g in range(n_groups)]


def layerwise_param_groups(model: TransferModel, optim: OptimConfig, multipliers: list[float],
                           backbone_weight_decay: float | None = None) -> list[dict[str, Any]]:
    """One optimizer group per (layer group × decay/no-decay), lr = optim.lr × multiplier.

    All parameters are included, frozen ones too: AdamW skips parameters without gradients, so
    strategies that unfreeze later (gradual unfreezing) need no new optimizer.
    """
    decay = optim.weight_decay if backbone_weight_decay is None else backbone_weight_decay
    groups: list[dict[str, Any]] = []
    for index, group in enumerate(model.backbone.layer_groups()):
        groups.extend(_split_decay(group, optim.lr * multipliers[index], decay, f"backbone.{index}"))
    groups.extend(_split_decay(list(model.head.named_parameters()), optim.head_lr, optim.weight_decay, "head"))
    return [g for g in groups if g["params"]]


def scaled_param_groups(model: TransferModel, optim: OptimConfig, lr_scale: float,
                        backbone_weight_decay: float | None = None) -> list[dict[str, Any]]:
    """Backbone-side parameters at lr × lr_scale (× layer decay); the head as usual. For methods
    that train new, small parameters (adapters, biases) at rates far above full fine-tuning's."""
    n_groups = len(model.backbone.layer_groups())
    multipliers = [lr_scale * m for m in layer_multipliers(n_groups, optim.layer_decay)]
    return layerwise_param_groups(model, optim, multipliers, backbone_weight_decay)


def _split_decay(named: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float, label: str) -> list[dict]:
    # Biases and normalisation weights (1-d tensors) get no weight decay (Loshchilov & Hutter, 2019).
    decay = [p for n, p in named if p.ndim > 1]
    no_decay = [p for n, p in named if p.ndim <= 1]
    return [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "name": f"{label}.decay"},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{label}.no_decay"},
    ]
