"""Ranking with the real packaged models (slow): source heads that really are ImageNet classifiers,
LEEP/NCE present for vision and absent for text, a pretrained encoder ranked above a random one,
and a text encoder offered for images refused before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.errors import DataError
from transferkit.rank.select import rank_models
from transferkit.zoo import ZOO, load_backbone

pytestmark = pytest.mark.slow

MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's sample photo of Grace Hopper
LITES = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


@pytest.fixture(autouse=True)
def _installed() -> None:
    missing = [name for name in [*LITES, "minilm-l6"] if not ZOO[name].is_installed()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


@pytest.mark.parametrize("name, native", [("efficientnet-lite0", 224), ("efficientnet-lite1", 240),
                                          ("efficientnet-lite2", 260)])
def test_each_lite_variant_loads_at_its_native_size_and_its_source_head_classifies(name, native) -> None:
    backbone = load_backbone(name).eval()
    assert backbone.preprocessor.image_size == native
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = np.asarray(Image.open(photo).convert("RGB"))
    batch = backbone.preprocessor.collate(backbone.preprocessor.encode([image]))
    with torch.inference_mode():
        logits = backbone.source_head(backbone(batch))
    assert logits.shape == (1, 1000)
    assert int(logits.argmax()) == MILITARY_UNIFORM


def test_text_encoder_on_image_data_is_refused_before_loading() -> None:
    with pytest.raises(DataError, match=r"minilm-l6 is a model for text but builtin:mnist-5k holds image data"):
        rank_models("efficientnet-lite0,minilm-l6", data="builtin:mnist-5k", sample=300, quiet=True)


def test_vision_candidates_get_leep_and_nce() -> None:
    ranking = rank_models("efficientnet-lite0@64,efficientnet-lite1@64", data="builtin:mnist-5k", sample=300,
                          quiet=True)
    assert ranking.sample == 300 and len(ranking.label_names) == 10
    for result in ranking.candidates:
        assert set(result.scores) == {"logme", "hscore", "nce", "leep", "knn"}
        assert result.scores["leep"] < 0 and result.scores["nce"] <= 0
        assert result.scores["knn"] > 0.5  # ImageNet features separate digits far above 10% chance
    assert ranking.agreement["leep"]["logme"] is not None


def test_pretrained_encoder_outranks_a_random_one_on_every_score() -> None:
    ranking = rank_models("tiny-bert,minilm-l6", data="builtin:vader-movie", sample=300, max_length=64, quiet=True)
    best = ranking.candidates[0]
    assert best.model == "minilm-l6"
    assert best.ranks == {"logme": 1, "hscore": 1, "knn": 1}  # no LEEP/NCE: no source classifier
    assert any("absent for minilm-l6, tiny-bert" in note for note in ranking.notes)
