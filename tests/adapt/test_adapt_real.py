"""`transferkit adapt` on the real packaged EfficientNet-Lite0 (slow): MNIST-5k → scikit-learn digits,
DANN and MMD against source-only, end to end through the CLI, on a small sample at 32 px."""

from __future__ import annotations

import json
import math

import pytest

from conftest import one_torch_thread
from transferkit.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapt-real") / "run"
    argv = ["adapt", "--source", "builtin:mnist-5k", "--target", "builtin:digits", "--model", "efficientnet-lite0",
            "--image-size", "32", "--methods", "dann,mmd", "--train-size", "200", "--target-size", "200",
            "--test-fraction", "0.1", "--val-fraction", "0.1", "--epochs", "1", "--batch-size", "16",
            "--lr", "1e-3", "--no-save-models", "--quiet", "--out", str(out)]
    with one_torch_thread():
        assert main(argv) == 0
    return out


def test_efficientnet_dann_and_mmd_end_to_end(run):
    report = json.loads((run / "adapt.json").read_text())
    assert report["model"] == "efficientnet-lite0" and list(report["methods"]) == ["source-only", "dann", "mmd"]
    assert report["sizes"]["source_train"] == 200 and report["sizes"]["target_train"] == 200
    for name, result in report["methods"].items():
        for key in ("target_accuracy", "source_accuracy", "target_macro_f1"):
            assert math.isfinite(result[key]) and 0 <= result[key] <= 1, (name, key, result[key])
        low, high = result["target_ci95"]
        assert low <= result["target_accuracy"] <= high
        assert result["selection"]["criterion"] == "source validation accuracy"
    for name in ("dann", "mmd"):
        delta = report["methods"][name]["delta_vs_source_only"]
        assert all(math.isfinite(v) for v in (delta["mean"], *delta["ci95"]))
        assert delta["ci95"][0] <= delta["mean"] <= delta["ci95"][1]


def test_efficientnet_run_states_the_resize(run):
    report = json.loads((run / "adapt.json").read_text())
    preprocessing = report["preprocessing"]
    assert preprocessing["image_size"] == 32
    assert preprocessing["original_sizes"]["source"][0].startswith("28×28")
    assert preprocessing["original_sizes"]["target"][0].startswith("8×8")
    assert "resized to 32×32 px" in (run / "report.md").read_text()
    # No learning threshold: 25 steps at 32 px reached only 0.146 in-domain (chance 0.1) when measured.
    assert (run / "features.png").stat().st_size > 1000
