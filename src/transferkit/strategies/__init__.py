"""Adaptation strategies, one family per module; each registers itself on import."""

from . import distill as _distill  # noqa: F401
from . import domain as _domain  # noqa: F401
from . import bitfit as _bitfit  # noqa: F401
from . import freeze as _freeze  # noqa: F401
from . import peft as _peft  # noqa: F401
from . import regularizers as _regularizers  # noqa: F401
from . import schedules as _schedules  # noqa: F401
from .base import (MODIFIERS, STRATEGIES, Modifier, OptimConfig, Strategy, parse_strategy, register_modifier,
                   register_strategy)

__all__ = ["MODIFIERS", "STRATEGIES", "Modifier", "OptimConfig", "Strategy", "parse_strategy", "register_modifier",
           "register_strategy"]
