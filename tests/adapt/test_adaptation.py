"""Domain adaptation: balanced batches, the alignment strategies, and `adapt` end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import transferkit
from transferkit import adaptation
from transferkit.adaptation import adapt
from transferkit.cli.main import main
from transferkit.data.domains import (UNLABELLED, DomainBalancedSampler, describe_sizes, image_sizes,
                                     target_training_labels)
from transferkit.data.examples import Split
from transferkit.errors import ConfigError, DataError
from transferkit.heads import ClassificationHead
from transferkit.model import TransferModel
from transferkit.strategies import OptimConfig, parse_strategy
from transferkit.zoo import load_backbone

from conftest import one_torch_thread


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.mark.parametrize("n_source, n_target, batch, share", [(50, 20, 8, 0.5), (33, 80, 10, 0.3), (7, 3, 4, 0.5)])
def test_balanced_sampler_covers_source_once_and_mixes_domains(n_source, n_target, batch, share):
    domain = np.array([0] * n_source + [1] * n_target)
    sampler = DomainBalancedSampler(domain, batch, share, seed=3)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        seen_source = [i for b in batches for i in b if domain[i] == 0]
        assert sorted(seen_source) == list(range(n_source))
        assert all(any(domain[i] == 1 for i in b) for b in batches)
        assert all(sum(domain[i] == 1 for i in b) == sampler.n_target for b in batches)
    sampler.set_epoch(1)
    assert list(sampler) == batches  # same seed + epoch, same order (resume replays it)


def test_target_label_policies():
    split = Split(items=list(range(30)), targets=np.repeat([0, 1, 2], 10), ids=[str(i) for i in range(30)])
    assert (target_training_labels(split, "none", 4, 0) == UNLABELLED).all()
    few = target_training_labels(split, "few", 4, 0)
    assert [int((few == c).sum()) for c in range(3)] == [4, 4, 4]
    assert (few[few != UNLABELLED] == split.targets[few != UNLABELLED]).all()
    assert (target_training_labels(split, "all", 4, 0) == split.targets).all()


def _batch_and_model():
    torch.manual_seed(0)
    model = TransferModel(load_backbone("tiny-cnn"), ClassificationHead(32, 2))
    features = torch.cat([torch.randn(6, 32), 3 + 2 * torch.randn(6, 32)])
    batch = {"domain": torch.tensor([0] * 6 + [1] * 6), "labels": torch.tensor([0, 1] * 3 + [UNLABELLED] * 6)}
    outputs = {"features": features.requires_grad_(), "logits": torch.randn(12, 2, requires_grad=True)}
    return model, batch, outputs


@pytest.mark.parametrize("spec", ["coral", "mmd", "dann"])
def test_alignment_losses_are_positive_for_shifted_domains_and_differentiable(spec):
    model, batch, outputs = _batch_and_model()
    strategy = parse_strategy(spec)
    strategy.prepare(model)
    model.train()
    parts = strategy.extra_losses(model, batch, outputs)
    assert set(parts) == {spec} and parts[spec].item() > 0
    parts[spec].backward()
    assert outputs["features"].grad is not None and outputs["features"].grad.abs().sum() > 0


def test_dann_trains_its_discriminator_and_schedules_lambda():
    model, batch, outputs = _batch_and_model()
    strategy = parse_strategy("dann:total_steps=10,steps_per_epoch=5")
    strategy.prepare(model)
    groups = strategy.param_groups(model, OptimConfig(lr=1e-3, head_lr=1e-2, weight_decay=0.0, epochs=2))
    adversary = {id(p) for p in model.aux["domain_adversary"].parameters()}
    assert adversary <= {id(p) for g in groups for p in g["params"]}
    model.train()
    # λ_0 = 0: the discriminator learns (its BCE is the loss) but no reversed gradient reaches the features yet.
    strategy.extra_losses(model, batch, outputs)["dann"].backward()
    assert outputs["features"].grad.abs().sum().item() == 0.0
    assert model.aux["domain_adversary"].discriminator.parameters().__next__().grad.abs().sum() > 0
    strategy.on_epoch_start(model, 1)  # a resumed run continues the schedule at step 5: λ > 0
    strategy.extra_losses(model, batch, outputs)["dann"].backward()
    assert outputs["features"].grad.abs().sum().item() > 0


def test_joint_replaces_task_loss_with_weighted_domain_terms():
    model, batch, outputs = _batch_and_model()
    batch["labels"] = torch.tensor([0, 1] * 6)
    strategy = parse_strategy("joint:weight=0.25")
    parts = strategy.extra_losses(model, batch, outputs)
    ce = torch.nn.functional.cross_entropy
    assert strategy.task_loss_weight == 0.0
    assert parts["source_loss"].item() == pytest.approx(ce(outputs["logits"][:6], batch["labels"][:6]).item())
    assert parts["target_loss"].item() == pytest.approx(0.25 * ce(outputs["logits"][6:], batch["labels"][6:]).item())


def _domain_csvs(tmp_path, labels_b=("pos", "neg")):
    rng = np.random.default_rng(0)
    paths = []
    for name, words, labels in (("a", ("good", "bad"), ("pos", "neg")), ("b", ("great", "awful"), labels_b)):
        path = tmp_path / f"{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i in range(60):
                k = i % 2
                writer.writerow([f"the {words[k]} thing {rng.integers(100)}", labels[k]])
        paths.append(path)
    return paths


def test_adapt_end_to_end_on_images(tmp_path):
    report = adapt("builtin:mnist-5k", "builtin:digits", "dann,coral,mmd,joint", target_labels="few", few_per_class=3,
                   target_size=200, model="tiny-cnn", epochs=1, train_size=300, batch_size=16, out=str(tmp_path / "run"),
                   quiet=True)
    saved = json.loads((tmp_path / "run" / "adapt.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert list(saved["methods"]) == ["source-only", "dann", "coral", "mmd", "joint"]
    for result in saved["methods"].values():
        low, high = result["target_ci95"]
        assert 0 <= low <= result["target_accuracy"] <= high <= 1 and 0 <= result["source_accuracy"] <= 1
    assert "source validation" in saved["model_selection"]
    preprocessing = saved["preprocessing"]
    assert preprocessing["image_size"] == 32  # tiny-cnn's own size: no --image-size given
    assert preprocessing["original_sizes"]["source"][0].startswith("28×28 (")
    assert preprocessing["original_sizes"]["target"][0].startswith("8×8 (")
    assert "resized to 32×32 px (bilinear)" in preprocessing["description"]
    baseline = saved["methods"]["source-only"]
    assert "delta_vs_source_only" not in baseline
    for name in ("dann", "coral", "mmd", "joint"):
        delta = saved["methods"][name]["delta_vs_source_only"]
        assert delta["mean"] == pytest.approx(saved["methods"][name]["target_accuracy"] - baseline["target_accuracy"])
        assert delta["ci95"][0] <= delta["mean"] <= delta["ci95"][1]
        assert delta["ci95"][1] - delta["ci95"][0] > 0
    for result in saved["methods"].values():
        assert result["selection"]["criterion"] == "source validation accuracy"
        assert result["selection"]["best_epoch"] == 1 and result["selection"]["best_step"] > 0
    report_md = (tmp_path / "run" / "report.md").read_text()
    assert "Δ vs source-only [95% CI]" in report_md and "**Model selection:** source validation split" in report_md
    assert "resized to 32×32 px" in report_md
    coral = saved["methods"]["coral"]["delta_vs_source_only"]
    assert f"{coral['mean']:+.4f} [{coral['ci95'][0]:+.4f}, {coral['ci95'][1]:+.4f}]" in report_md
    assert (tmp_path / "run" / "features.png").stat().st_size > 1000
    reloaded = transferkit.load(tmp_path / "run" / "methods" / "coral" / "model")
    assert reloaded.label_names == [str(d) for d in range(10)]


def test_adapt_on_text_through_the_cli(tmp_path, capsys):
    a, b = _domain_csvs(tmp_path)
    code = main(["adapt", "--source", str(a), "--target", str(b), "--model", "tiny-bert", "--methods", "coral",
                 "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet", "--no-save-models"])
    assert code == 0
    assert "coral" in capsys.readouterr().out
    assert not (tmp_path / "run" / "methods").exists()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"methods": "joint"}, ConfigError, "needs target labels"),
    ({"methods": "nope"}, ConfigError, "unknown adaptation method"),
    ({"methods": "coral:weight=-1"}, ConfigError, "weight must be >= 0"),
])
def test_bad_method_choices(tmp_path, kwargs, error, message):
    a, b = _domain_csvs(tmp_path)
    with pytest.raises(error, match=message):
        adapt(str(a), str(b), model="tiny-bert", out=str(tmp_path / "run"), **kwargs)
    assert not (tmp_path / "run").exists()


def test_different_label_sets_are_named(tmp_path):
    a, b = _domain_csvs(tmp_path, labels_b=("pos", "negative"))
    with pytest.raises(DataError, match="only in source: neg; only in target: negative"):
        adapt(str(a), str(b), "coral", model="tiny-bert", out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_empty_target_is_a_clear_error(tmp_path):
    a, _ = _domain_csvs(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataError, match="no data rows"):
        adapt(str(a), str(empty), "coral", model="tiny-bert", out=str(tmp_path / "run"))


def test_image_sizes_decode_every_file_and_name_a_corrupt_one(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((5, 7, 3), dtype=np.uint8)).save(good)
    sizes = image_sizes([good, np.zeros((8, 8), dtype=np.uint8), np.zeros((8, 8), dtype=np.uint8)])
    assert sizes == {"7×5": 1, "8×8": 2}
    assert describe_sizes(sizes) == ["8×8 (2)", "7×5 (1)"]
    assert describe_sizes(sizes, limit=1) == ["8×8 (2)", "+1 other sizes"]
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DataError, match="bad.png: corrupt or unreadable image"):
        image_sizes([good, bad])


def _poisoning(monkeypatch, target_spec):
    """Make adapt see shifted target labels (train and test): y -> (y + 1) mod k."""
    real_prepare = adaptation._prepare

    def prepare(cfg, spec, size):
        data = real_prepare(cfg, spec, size)
        if spec == target_spec:
            k = len(data.label_names)
            for split in (data.train, data.test):
                split.targets = (split.targets + 1) % k
        return data

    monkeypatch.setattr(adaptation, "_prepare", prepare)


def _weights(run, method):
    folder = run / "methods" / method / "model"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.safetensors"))}


def test_model_selection_never_reads_target_labels(tmp_path, monkeypatch):
    """Poisoned target labels change the target accuracy, but not the chosen epoch or the weights."""
    options = dict(target_size=150, model="tiny-cnn", epochs=3, train_size=200, batch_size=16, test_fraction=0.05,
                   val_fraction=0.05, quiet=True)
    clean = adapt("builtin:mnist-5k", "builtin:digits", "dann,coral", out=str(tmp_path / "clean"), **options)
    _poisoning(monkeypatch, "builtin:digits")
    poisoned = adapt("builtin:mnist-5k", "builtin:digits", "dann,coral", out=str(tmp_path / "poisoned"), **options)
    assert poisoned["methods"]["source-only"]["target_accuracy"] != clean["methods"]["source-only"]["target_accuracy"]
    for method in ("source-only", "dann", "coral"):
        assert poisoned["methods"][method]["selection"] == clean["methods"][method]["selection"]
        assert poisoned["methods"][method]["source_accuracy"] == clean["methods"][method]["source_accuracy"]
        weights = _weights(tmp_path / "clean", method)
        assert weights and _weights(tmp_path / "poisoned", method) == weights
    assert {r["selection"]["epochs_run"] for r in clean["methods"].values()} == {3}


@pytest.mark.slow
def test_minilm_movie_to_amazon_small(tmp_path):
    report = adapt("builtin:vader-movie", "builtin:vader-amazon", "coral", model="minilm-l6", epochs=1,
                   train_size=240, target_size=240, batch_size=16, max_length=64, test_fraction=0.05,
                   val_fraction=0.05, out=str(tmp_path / "run"), quiet=True, save_models=False)
    # Pretrained MiniLM carries sentiment across domains: far above chance on Amazon from movie data.
    assert report["methods"]["source-only"]["target_accuracy"] > 0.6
    assert report["methods"]["coral"]["target_accuracy"] > 0.6
