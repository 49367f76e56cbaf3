"""The paths users take, on the real packaged pretrained models (marked slow; they run in CI).

MiniLM-L6 on a slice of VADER movie snippets and EfficientNet-Lite0 on a slice of MNIST: the
transfer must be real (frozen pretrained features beat chance by far; fine-tuning works), the
artifact must reload identically, and the encoder must be a standard Hugging Face directory.
"""

from __future__ import annotations

import pytest
import torch

import transferkit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "run"
    return transferkit.fit(data="builtin:vader-movie", model="minilm-l6", strategy="full", train_size=300,
                           val_fraction=0.05, test_fraction=0.05, epochs=1, batch_size=16, max_length=64,
                           out=str(out), quiet=True)


def test_minilm_fine_tuning_beats_chance_and_reports(minilm_run):
    metrics = minilm_run.metrics
    # Frozen MiniLM features already separate sentiment (ASSETS.md: ~0.74 with 2,000 examples).
    assert metrics["before"]["accuracy"] > 0.62
    assert metrics["after"]["accuracy"] > 0.62
    low, high = metrics["delta_accuracy"]["ci95"]
    assert low <= metrics["delta_accuracy"]["mean"] <= high
    assert metrics["n_test"] == 528
    assert (minilm_run.run_dir / "report.html").read_text().count("<table>") >= 2


def test_minilm_encoder_is_a_standard_hf_directory(minilm_run):
    from transformers import AutoModel, AutoTokenizer

    encoder_dir = minilm_run.model_dir / "encoder"
    hf_model = AutoModel.from_pretrained(encoder_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    ours = transferkit.load(minilm_run.model_dir).model.backbone.encoder
    batch = tokenizer(["a gripping, beautiful film", "dull and far too long"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        theirs = hf_model(**batch).last_hidden_state
        mine = ours(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.allclose(theirs, mine, atol=1e-6)
    # ...and fine-tuning really changed it relative to the packaged source weights.
    from transferkit.zoo import load_backbone

    source = load_backbone("minilm-l6").encoder
    with torch.inference_mode():
        before = source(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert not torch.allclose(before, mine, atol=1e-3)


def test_minilm_artifact_predicts_like_metrics(minilm_run):
    predictor = transferkit.load(minilm_run.model_dir)
    results = predictor.predict(["an utterly delightful, moving film", "a tedious, clumsy mess"])
    assert [r["label"] for r in results] == ["positive", "negative"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)


@pytest.mark.parametrize("strategy", ["linear-probe", "freeze-bottom:12"])
def test_efficientnet_on_mnist_slice(strategy, tmp_path):
    result = transferkit.fit(data="builtin:mnist-5k", model="efficientnet-lite0", strategy=strategy, train_size=400,
                             val_fraction=0.04, test_fraction=0.06, image_size=64, epochs=2, batch_size=32,
                             lr=1e-3, head_lr=3e-3, out=str(tmp_path / "run"), quiet=True)
    metrics = result.metrics
    # ImageNet features transfer to digits: far above the 10% chance level even frozen.
    assert metrics["after"]["accuracy"] > 0.5
    reloaded = transferkit.load(result.model_dir)
    assert reloaded.meta["backbone"]["arch"] == "efficientnet-lite0"
    assert reloaded.model.backbone.preprocessor.image_size == 64
