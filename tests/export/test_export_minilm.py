"""The real path (slow): MiniLM fine-tuned on VADER movie snippets, exported as onnx-int8 and int8,
each verified in a fresh process on the model's own test split within the default 1-point budget."""

from __future__ import annotations

import pytest

import transferkit
from transferkit.export.exporter import export_model

pytestmark = pytest.mark.slow

REVIEWS = ["a gripping, beautiful and moving film", "a dull, lifeless and boring mess", "the best movie this year",
           "awful acting and a terrible script"]


@pytest.fixture(scope="module")
def movie_model(tmp_path_factory):
    result = transferkit.fit(data="builtin:vader-movie", model="minilm-l6", strategy="full", train_size=1000, epochs=1,
                             seed=0, skip_before=True, quiet=True, out=str(tmp_path_factory.mktemp("minilm") / "run"))
    return result.model_dir


@pytest.mark.parametrize("fmt", ["onnx-int8", "int8"])
def test_minilm_exports_within_one_point(movie_model, tmp_path, fmt):
    result = export_model(movie_model, fmt, tmp_path / fmt, quiet=True)  # raises if more than 1 point is lost
    verification = result.verification
    assert verification["n"] == 2114  # the whole VADER movie test split (20% of 10,568)
    assert verification["agreement"] >= 0.97
    assert verification["accuracy_drop_points"] <= 1.0 and verification["accuracy_export"] > 0.7
    exported, source = transferkit.load(result.directory), transferkit.load(movie_model)
    assert [p["label"] for p in exported.predict(REVIEWS)] == [p["label"] for p in source.predict(REVIEWS)]
    if fmt == "onnx-int8":
        assert verification["size_mb"] < 0.4 * verification["source"]["size_mb"]
