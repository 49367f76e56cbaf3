"""Pretrained sources: the zoo registry, backbone loading, and rebuilding from artifacts."""

from . import entries as _entries  # noqa: F401  (registers the packaged models)
from .base import Backbone, Preprocessor
from .registry import ZOO, ZooEntry, load_backbone, register_model
from .rebuild import backbone_from_artifact

__all__ = ["ZOO", "Backbone", "Preprocessor", "ZooEntry", "backbone_from_artifact", "load_backbone", "register_model"]
