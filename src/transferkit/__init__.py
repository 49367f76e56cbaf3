"""transferkit: adapt a pretrained model to a new task, prove the gain, ship a verified artifact.

Python API (every CLI flag of `transferkit fit` is a keyword of `fit`):

    import transferkit
    result = transferkit.fit(data="builtin:vader-movie", model="minilm-l6", strategy="full", out="runs/x")
    model = transferkit.load("runs/x/model")
    model.predict(["a gripping, beautiful film"])
    ranking = transferkit.rank_models("minilm-l6,mpnet-base", data="builtin:vader-movie", sample=1000)

Names are imported on first use (PEP 562), so `import transferkit` and quick CLI commands do not
pay for importing torch, transformers and peft until they are needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "transferkit.pipeline", "FitResult": "transferkit.pipeline", "FitConfig": "transferkit.config",
    "load": "transferkit.predictor", "Predictor": "transferkit.predictor", "evaluate": "transferkit.evaluation.on_data",
    "TransferkitError": "transferkit.errors", "rank_models": "transferkit.rank.select", "auto": "transferkit.rank.auto",
    "distill": "transferkit.distillation", "export_model": "transferkit.export.exporter",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # Sub-packages (transferkit.data, transferkit.rank, ...) load on attribute access too.
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'transferkit' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
