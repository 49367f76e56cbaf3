"""Adaptation strategies, one family per module; each registers itself on import."""

from . import domain as _domain  # noqa: F401
from . import freeze as _freeze  # noqa: F401
from .base import STRATEGIES, OptimConfig, Strategy, parse_strategy, register_strategy

__all__ = ["STRATEGIES", "OptimConfig", "Strategy", "parse_strategy", "register_strategy"]
