"""The backbone contract: a pretrained feature extractor that knows its preprocessing and layers.

Modelled on timm's split of `forward_features` / `forward_head`: a backbone only turns a
preprocessed batch into pooled features `[B, D]`; task heads live elsewhere (heads.py). It
exposes its parameters bottom-to-top as *layer groups* (lists of parameter-name prefixes), so
freezing, gradual unfreezing and layer-wise learning rates are data, not code.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
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

    @abstractmethod
    def save_weights(self, directory: Path) -> dict[str, Any]:
        """Write the weights (safetensors) and return the JSON spec an artifact rebuilds from."""

    def layer_groups(self) -> list[list[tuple[str, nn.Parameter]]]:
        """Named parameters per layer group, bottom to top; every used parameter in exactly one."""
        groups: list[list[tuple[str, nn.Parameter]]] = [[] for _ in self.layer_group_prefixes()]
        prefixes = self.layer_group_prefixes()
        unused = tuple(self.unused_prefixes())
        for name, param in self.named_parameters():
            if unused and name.startswith(unused):
                continue
            index = next((i for i, group in enumerate(prefixes) if name.startswith(tuple(group))), None)
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
