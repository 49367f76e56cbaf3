"""The backbone contract: a pretrained feature extractor that knows its preprocessing and layers.

Modelled on timm's split of `forward_features` / `forward_head`: a backbone only turns a
preprocessed batch into pooled features `[B, D]`; task heads live elsewhere (heads.py). It
exposes its parameters bottom-to-top as *layer groups* (lists of parameter-name prefixes), so
freezing, gradual unfreezing and layer-wise learning rates are data, not code.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


class Preprocessor(ABC):
    """Turns raw examples (texts, images) into model inputs for one batch."""

    @abstractmethod
    def encode(self, items: Sequence[Any]) -> list[Any]:
        """Per-example encoding (token ids, image tensors); done once, before batching."""

    @abstractmethod
    def collate(self, encoded: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Stack encoded examples into one batch (dynamic padding for text)."""

    @abstractmethod
    def size(self, encoded: Any) -> int:
        """Length used for bucketing and throughput accounting (tokens, or 1 per image)."""

    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write preprocessing files into `directory`; return the JSON-able settings."""


@dataclass(frozen=True)
class PeftSpec:
    """How the `peft` library adapts a backbone family: data, not if-chains on class names.

    Target names follow peft's matching rule: a module is adapted when its name equals a target
    or ends with "." + target (names relative to the wrapped module).
    """

    module: str  # the attribute holding the module peft wraps (e.g. "encoder", "net")
    lora: tuple[str, ...]  # LoRA's default targets: attention projections, pointwise convs
    ia3: tuple[str, ...]  # IA3's default targets (outputs rescaled) ...
    ia3_feedforward: tuple[str, ...]  # ... of which these have their *input* rescaled (l_ff)
    task_type: str | None = None  # peft task type; "FEATURE_EXTRACTION" lets encoders take prompts


_PEFT_WRAPPER = re.compile(r"(^|\.)base_model\.(model\.)?")


def plain_name(name: str) -> str:
    """A parameter name as it was before peft wrapped part of the backbone.

    peft nests the wrapped module as `X.base_model.model.…` (LoRA, IA3) or `X.base_model.…`
    (prompt learning); layer-group prefixes are written for plain names, so they keep working.
    """
    return _PEFT_WRAPPER.sub(r"\1", name)


class Backbone(nn.Module, ABC):
    """A pretrained encoder: `forward(batch) -> [B, feature_dim]` pooled features."""

    modality: str = ""  # "text" or "image"
    family: str = ""  # how an artifact rebuilds it: "hf-text", "efficientnet", "tiny-cnn"

    def __init__(self, source: str, feature_dim: int) -> None:
        super().__init__()
        self.source = source
        self.feature_dim = feature_dim

    @property
    @abstractmethod
    def preprocessor(self) -> Preprocessor: ...

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    @abstractmethod
    def layer_group_prefixes(self) -> list[list[str]]:
        """Parameter-name prefixes per layer group, bottom (embeddings/stem) to top."""

    def unused_prefixes(self) -> list[str]:
        """Parameters that pooled features never touch (e.g. a BERT pooler, a source classifier)."""
        return []

    def source_head(self, features: torch.Tensor) -> torch.Tensor | None:
        """Logits of the source task's own classifier on pooled features, or None without one.

        LEEP and NCE (transferability scores) need the source model's class probabilities;
        sentence encoders have no source classifier, so they return None.
        """
        return None

    def peft_spec(self) -> PeftSpec | None:
        """How peft adapts this backbone (LoRA, IA3, prefix tuning); None when it cannot."""
        return None

    # -- running the bottom and the top apart (freeze-bottom:K computes its frozen part once) ---
    # `bottom(batch, k)` is the output of layer groups [0, k) — per token [B, L, D] for text, a
    # feature map [B, C, H, W] for images — and `forward` on a batch carrying that output as
    # `frozen_state` (with `frozen_groups` = k) runs groups [k, G) only, so
    # forward({"frozen_state": bottom(batch, k), ...}) == forward(batch) in eval mode.

    supports_bottom_split: bool = False

    def bottom(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """The output of layer groups [0, k) (backbones with `supports_bottom_split`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot run its bottom layer groups apart")

    def bottom_modules(self, k: int) -> list[nn.Module]:
        """The modules that compute layer groups [0, k): a frozen bottom runs them in eval mode
        (no dropout, no BatchNorm updates), a fixed function of the input — which is also what
        makes computing it once exact."""
        return []

    @abstractmethod
    def save_weights(self, directory: Path) -> dict[str, Any]:
        """Write the weights (safetensors) and return the JSON spec an artifact rebuilds from."""

    def layer_groups(self) -> list[list[tuple[str, nn.Parameter]]]:
        """Named parameters per layer group, bottom to top; every used parameter in exactly one."""
        groups: list[list[tuple[str, nn.Parameter]]] = [[] for _ in self.layer_group_prefixes()]
        prefixes = self.layer_group_prefixes()
        unused = tuple(self.unused_prefixes())
        for name, param in self.named_parameters():
            plain = plain_name(name)
            if unused and plain.startswith(unused):
                continue
            index = next((i for i, group in enumerate(prefixes) if plain.startswith(tuple(group))), None)
            if index is None:
                raise RuntimeError(f"{type(self).__name__}: parameter {name} is in no layer group")
            groups[index].append((name, param))
        return groups

    def weights_hash(self) -> str:
        """sha256 over parameter names and bytes: identifies exactly which weights were used."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
