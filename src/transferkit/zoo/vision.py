"""Vision backbones: CNNs whose pooled last feature map is the feature vector.

Images arrive as file paths or uint8 arrays (H×W grey or H×W×3 RGB). The preprocessor makes
every image RGB (grey is replicated to three channels), resizes it to a square of `image_size`
pixels with bilinear interpolation, and keeps it as uint8 until batching (4× less memory than
float); `collate` scales to [0, 1] and normalises with the backbone's mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import DataError
from .base import Backbone, PeftSpec, Preprocessor


class ImagePreprocessor(Preprocessor):
    """RGB, square resize, per-channel normalisation. Settings are saved with the artifact."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.image_size = int(image_size)
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)

    def encode(self, items: Sequence[Any]) -> list[torch.Tensor]:
        return [self._encode_one(item) for item in items]

    def _encode_one(self, item: Any) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        if isinstance(item, (str, Path)):
            try:
                with Image.open(item) as handle:
                    image = handle.convert("RGB")
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{item}: not a readable image ({type(exc).__name__}); remove or replace it") from None
        else:
            array = np.asarray(item)
            if array.dtype != np.uint8:
                raise DataError(f"in-memory images must be uint8 arrays, got {array.dtype}")
            image = Image.fromarray(array).convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()

    def collate(self, encoded: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        pixels = torch.stack(list(encoded)).float().div_(255.0)
        return {"pixel_values": (pixels - self.mean) / self.std}

    def size(self, encoded: torch.Tensor) -> int:
        return 1

    def save(self, directory: Path) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}


class CNNBackbone(Backbone):
    """Shared behaviour of CNN backbones: uint8 images in, pooled features out."""

    modality = "image"

    def __init__(self, source: str, feature_dim: int, preprocessor: ImagePreprocessor) -> None:
        super().__init__(source=source, feature_dim=feature_dim)
        self._preprocessor = preprocessor

    @property
    def preprocessor(self) -> ImagePreprocessor:
        return self._preprocessor

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def save_weights(self, directory: Path) -> dict[str, Any]:
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(Path(directory) / "backbone.safetensors"))
        return {"family": self.family, "weights": "backbone.safetensors", **self.spec(), **self._preprocessor.save(directory)}


class EfficientNetBackbone(CNNBackbone):
    """EfficientNet-Lite (Tan & Le, ICML 2019; the Lite variants drop squeeze-excitation and use
    ReLU6 for mobile/CPU inference). Features: global average of the 1280-channel head map.

    The ImageNet classifier `_fc` is kept (unused by the features) because LEEP/NCE need the
    source model's own class probabilities.
    """

    family = "efficientnet"
    MEAN = (0.5, 0.5, 0.5)  # the Lite checkpoints expect (x - 127.5) / 127.5
    STD = (0.5, 0.5, 0.5)

    def __init__(self, arch: str, source: str, image_size: int = 224) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(arch, image_size=image_size)
        _plain_pointwise_convs(net)
        super().__init__(source, int(net._conv_head.out_channels), ImagePreprocessor(image_size, self.MEAN, self.STD))
        self.arch = arch
        self.net = net
        self._block_count = len(net._blocks)

    supports_bottom_split = True

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # The library's `extract_features`, written out so that it can start above a frozen
        # bottom: stem, then the MBConv blocks (drop-connect rate growing with depth), then head.
        net = self.net
        if "frozen_state" in batch:
            x, start = batch["frozen_state"], int(batch["frozen_groups"]) - 1
        else:
            x, start = self._stem(batch["pixel_values"]), 0
        x = self._blocks(x, start, self._block_count)
        return net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))

    def _stem(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net._swish(self.net._bn0(self.net._conv_stem(pixels)))

    def _blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        rate = self.net._global_params.drop_connect_rate
        for index in range(start, min(stop, self._block_count)):
            x = self.net._blocks[index](x, drop_connect_rate=rate * (float(index) / self._block_count) if rate else rate)
        return x

    def bottom(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """Groups [0, k): the stem (group 0) and blocks [0, k − 1)."""
        return self._blocks(self._stem(batch["pixel_values"]), 0, k - 1)

    def bottom_modules(self, k: int) -> list[nn.Module]:
        return [self.net._conv_stem, self.net._bn0, *list(self.net._blocks)[: max(k - 1, 0)]] if k >= 1 else []

    def source_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """ImageNet logits of the original classifier (for LEEP / NCE)."""
        return self.source_head(self.forward(batch))

    def source_head(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet logits from pooled features: the source classifier alone, so cached
        features need no second backbone pass."""
        return self.net._fc(features)

    def layer_group_prefixes(self) -> list[list[str]]:
        blocks = [[f"net._blocks.{i}."] for i in range(self._block_count)]
        return [["net._conv_stem.", "net._bn0."], *blocks, ["net._conv_head.", "net._bn1."]]

    def unused_prefixes(self) -> list[str]:
        return ["net._fc."]

    def peft_spec(self) -> PeftSpec:
        """LoRA/IA3 on the pointwise (1×1) convolutions of the MBConv blocks and the head, where
        almost all of the weights are; IA3 rescales the input of each block's projection (the
        expanded activations, the analogue of a transformer's feed-forward l_ff)."""
        pointwise = ("_expand_conv", "_project_conv", "_conv_head")
        return PeftSpec(module="net", lora=pointwise, ia3=pointwise, ia3_feedforward=("_project_conv",))

    def spec(self) -> dict[str, Any]:
        return {"arch": self.arch}


class TinyCNNBackbone(CNNBackbone):
    """A three-block CNN, randomly initialised from a fixed seed: for fast tests only."""

    family = "tiny-cnn"

    def __init__(self, source: str = "tiny-cnn", image_size: int = 32, width: int = 8) -> None:
        super().__init__(source, 4 * width, ImagePreprocessor(image_size, (0.5,) * 3, (0.5,) * 3))
        self.width = width
        channels = [3, width, 2 * width, 4 * width]
        self.blocks = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
            for cin, cout in zip(channels[:-1], channels[1:])
        ))

    supports_bottom_split = True

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "frozen_state" in batch:  # the output of the first k blocks, computed once
            return self.blocks[int(batch["frozen_groups"]):](batch["frozen_state"]).mean(dim=(2, 3))
        return self.blocks(batch["pixel_values"]).mean(dim=(2, 3))  # (peft may have wrapped `blocks`)

    def bottom(self, batch: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        return self.blocks[:k](batch["pixel_values"])

    def bottom_modules(self, k: int) -> list[nn.Module]:
        return list(self.blocks)[:k] if k >= 1 else []

    def layer_group_prefixes(self) -> list[list[str]]:
        return [[f"blocks.{i}."] for i in range(3)]

    def peft_spec(self) -> PeftSpec:
        """The convolution of each block (`blocks.<i>.0`)."""
        convs = ("0.0", "1.0", "2.0")
        return PeftSpec(module="blocks", lora=convs, ia3=convs, ia3_feedforward=())

    def spec(self) -> dict[str, Any]:
        return {"width": self.width}


def _plain_pointwise_convs(net: nn.Module) -> None:
    """Make the 1×1, stride-1 "static same padding" convolutions plain `nn.Conv2d`s, in place.

    Their padding is the identity, so the output is exactly the same and the state-dict keys
    do not change; but peft builds LoRA's A/B convolutions with the adapted layer's own class,
    and the static-padding class cannot be built without an image size.
    """
    for parent in list(net.modules()):
        for name, conv in list(parent.named_children()):
            if _static_pointwise(conv):
                plain = nn.Conv2d(conv.in_channels, conv.out_channels, 1, groups=conv.groups, bias=conv.bias is not None)
                plain.load_state_dict(conv.state_dict())
                setattr(parent, name, plain)


def _static_pointwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and type(module) is not nn.Conv2d and module.kernel_size == (1, 1)
            and tuple(module.stride) == (1, 1) and tuple(module.padding) == (0, 0) and tuple(module.dilation) == (1, 1)
            and type(getattr(module, "static_padding", None)).__name__ == "Identity")
