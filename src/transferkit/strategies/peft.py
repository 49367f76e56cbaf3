"""Parameter-efficient fine-tuning through the `peft` library: LoRA, IA3, prefix/prompt tuning.

The pretrained weights stay frozen; a few new parameters (and the task head, always) train.
peft does the adapting; these classes choose its configuration from the backbone family
(`Backbone.peft_spec()`: attention projections for BERT/MPNet, pointwise convolutions for
EfficientNet), validate options before anything is written, and set learning rates.

Learning rates: these methods train new, small parameters and want far larger rates than full
fine-tuning's 5e-5, so each has `lr_scale` (its rate = --lr × lr_scale) defaulting to its
paper's rate at the default --lr: LoRA 5e-4 (Hu et al. on GLUE), IA3 3e-3 (Liu et al.),
prefix tuning 5e-3 (P-tuning v2's range for BERT-size encoders, Liu et al., ACL 2022).

The artifact of a peft strategy holds the adapter only (peft's adapter files) plus the head;
`transferkit merge` folds a LoRA adapter into a plain model (export/adapters.py).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..model import TransferModel
from ..zoo.base import Backbone, PeftSpec
from ..zoo.peft_wrap import adapter_of, check_targets, wrap
from .base import OptimConfig, Strategy, register_strategy, scaled_param_groups

TARGET_HELP = "module names to adapt, '/'-separated (default: the backbone family's)"


def split_targets(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split("/") if t)


class PeftStrategy(Strategy):
    """Shared behaviour: wrap once with a peft config, train the adapter and the head."""

    trains_pretrained_weights = False
    decay_adapter = True  # apply --weight-decay to the adapter's matrices

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        if backbone.peft_spec() is None:
            raise ConfigError(f"strategy {self.name} does not apply to {backbone.source}")

    def peft_config(self, backbone: Backbone, spec: PeftSpec) -> Any:
        raise NotImplementedError

    def prepare(self, model: TransferModel) -> None:
        if adapter_of(model.backbone) is None:  # the loop prepares again: wrap only once
            wrap(model.backbone, self.peft_config(model.backbone, model.backbone.peft_spec()))
        for param in model.head.parameters():  # the task head always trains (and is always saved)
            param.requires_grad = True

    def param_groups(self, model: TransferModel, optim: OptimConfig) -> list[dict[str, Any]]:
        return scaled_param_groups(model, optim, self.options.lr_scale, None if self.decay_adapter else 0.0)


def _check_lr_scale(lr_scale: float) -> None:
    if not lr_scale > 0:
        raise ValueError("lr_scale must be > 0")


@dataclass
class LoraOptions:
    r: int = field(default=8, metadata={"help": "rank of the update ΔW = B·A"})
    alpha: float = field(default=16.0, metadata={"help": "ΔW is scaled by alpha / r"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the input of the low-rank branch"})
    targets: str = field(default="", metadata={"help": TARGET_HELP + ", e.g. query/value for BERT"})
    lr_scale: float = field(default=10.0, metadata={"help": "adapter learning rate = --lr × lr_scale"})

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"r (the rank) must be >= 1, not {self.r}")
        if not self.alpha > 0 or not 0 <= self.dropout < 1:
            raise ValueError("alpha must be > 0 and dropout in [0, 1)")
        _check_lr_scale(self.lr_scale)


@register_strategy
class LoRA(PeftStrategy):
    """LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022).

    A frozen weight W₀ ∈ R^{d×k} gets a trainable low-rank update:
        h = W₀·x + (α/r)·B·A·x,   A ∈ R^{r×k} (random), B ∈ R^{d×r} (zero: training starts
    from the pretrained function). Merged, W = W₀ + (α/r)·B·A is a plain layer: no inference cost.
    """

    name = "lora"
    summary = "low-rank updates of the attention projections / pointwise convs (peft)"
    Options = LoraOptions

    def targets(self, spec: PeftSpec) -> tuple[str, ...]:
        return split_targets(self.options.targets) or spec.lora

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        super().check(backbone, optim)
        modules = check_targets(backbone, self.name, self.targets(backbone.peft_spec()))
        ceiling = min(_max_rank(module) for module in modules)
        if self.options.r > ceiling:
            raise ConfigError(f"lora: r={self.options.r} exceeds the rank of the smallest adapted weight of "
                              f"{backbone.source} ({ceiling}); use r <= {ceiling}")

    def peft_config(self, backbone: Backbone, spec: PeftSpec) -> Any:
        from peft import LoraConfig

        targets = self.targets(spec)
        self.options = dataclasses.replace(self.options, targets="/".join(targets))  # record what was adapted
        return LoraConfig(r=self.options.r, lora_alpha=self.options.alpha, lora_dropout=self.options.dropout,
                          target_modules=list(targets), task_type=spec.task_type)


def _max_rank(module: Any) -> int:
    """The largest rank a weight update of this Linear / Conv2d can have."""
    if hasattr(module, "in_features"):
        return min(module.in_features, module.out_features)
    fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
    return min(fan_in, module.out_channels)


@dataclass
class IA3Options:
    targets: str = field(default="", metadata={"help": TARGET_HELP + ", e.g. key/value/output.dense for BERT"})
    feedforward: str = field(default="", metadata={"help": "targets whose input (not output) is rescaled, '/'-separated"})
    lr_scale: float = field(default=60.0, metadata={"help": "learning rate of the scaling vectors = --lr × lr_scale"})

    def __post_init__(self) -> None:
        _check_lr_scale(self.lr_scale)


@register_strategy
class IA3(PeftStrategy):
    """IA3 (Liu et al., "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
    In-Context Learning", NeurIPS 2022): learned vectors rescale activations elementwise,
        k' = l_k ⊙ k,  v' = l_v ⊙ v,  h_ff' = (l_ff ⊙ γ(W₁x))·W₂,
    initialised to 1 (the pretrained function). Vectors get no weight decay: decaying them
    towards 0 would switch activations off.
    """

    name = "ia3"
    summary = "learned rescaling vectors on keys, values and feed-forward activations (peft)"
    Options = IA3Options
    decay_adapter = False

    def targets(self, spec: PeftSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
        targets = split_targets(self.options.targets) or spec.ia3
        feedforward = split_targets(self.options.feedforward)
        if not feedforward and not self.options.targets:
            feedforward = spec.ia3_feedforward
        return targets, feedforward

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        super().check(backbone, optim)
        targets, feedforward = self.targets(backbone.peft_spec())
        check_targets(backbone, self.name, targets)
        outside = [name for name in feedforward if name not in targets]
        if outside:
            raise ConfigError(f"ia3: feedforward modules must also be targets; {', '.join(outside)} is not")

    def peft_config(self, backbone: Backbone, spec: PeftSpec) -> Any:
        from peft import IA3Config

        targets, feedforward = self.targets(spec)
        self.options = dataclasses.replace(self.options, targets="/".join(targets), feedforward="/".join(feedforward))
        return IA3Config(target_modules=list(targets), feedforward_modules=list(feedforward), task_type=spec.task_type)


@dataclass
class PrefixOptions:
    virtual_tokens: int = field(default=20, metadata={"help": "number of learned virtual tokens"})
    kind: str = field(default="prefix", metadata={"help": "prefix: keys/values at every layer (Li & Liang); "
                                                         "prompt: embeddings at the input only (Lester et al.)"})
    lr_scale: float = field(default=100.0, metadata={"help": "learning rate of the virtual tokens = --lr × lr_scale"})

    def __post_init__(self) -> None:
        if self.virtual_tokens < 1:
            raise ValueError("virtual_tokens must be >= 1")
        if self.kind not in ("prefix", "prompt"):
            raise ValueError(f"kind must be prefix or prompt, not {self.kind!r}")
        _check_lr_scale(self.lr_scale)


@register_strategy
class Prefix(PeftStrategy):
    """Prefix tuning (Li & Liang, ACL 2021): trainable key/value vectors P_k, P_v are prepended
    at every attention layer, head_i = Attn(x·W_q, [P_k; x·W_k], [P_v; x·W_v]).
    `kind=prompt` is prompt tuning (Lester et al., EMNLP 2021): trainable embeddings prepended
    to the input only. Text encoders only; features pool the real tokens, not the virtual ones.
    """

    name = "prefix"
    summary = "learned virtual tokens: prefix (every layer) or prompt (input) tuning (peft)"
    Options = PrefixOptions
    modalities = ("text",)
    decay_adapter = False

    def check(self, backbone: Backbone, optim: OptimConfig) -> None:
        super().check(backbone, optim)
        module = getattr(backbone, backbone.peft_spec().module)
        if self.options.kind == "prefix" and "past_key_values" not in inspect.signature(module.forward).parameters:
            raise ConfigError(f"prefix: {backbone.source} ({type(module).__name__}) takes no per-layer keys/values "
                              "(past_key_values); use prefix:kind=prompt")

    def peft_config(self, backbone: Backbone, spec: PeftSpec) -> Any:
        from peft import PrefixTuningConfig, PromptTuningConfig

        config = PrefixTuningConfig if self.options.kind == "prefix" else PromptTuningConfig
        return config(num_virtual_tokens=self.options.virtual_tokens, task_type=spec.task_type)
