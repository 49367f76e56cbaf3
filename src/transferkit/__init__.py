"""transferkit: adapt a pretrained model to a new task, prove the gain, ship a verified artifact.

Python API (every CLI flag of `transferkit fit` is a keyword of `fit`):

    import transferkit
    result = transferkit.fit(data="builtin:vader-movie", model="minilm-l6", strategy="full", out="runs/x")
    model = transferkit.load("runs/x/model")
    model.predict(["a gripping, beautiful film"])
"""

from .config import FitConfig
from .errors import TransferkitError
from .evaluation import evaluate
from .fit import FitResult, fit
from .predictor import Predictor, load

__version__ = "0.1.0"
__all__ = ["FitConfig", "FitResult", "Predictor", "TransferkitError", "evaluate", "fit", "load"]
