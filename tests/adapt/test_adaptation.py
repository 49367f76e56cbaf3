"""Domain adaptation: balanced batches, the alignment strategies, and `adapt` end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import transferkit
from transferkit.adaptation import adapt
from transferkit.cli.main import main
from transferkit.data.domains import UNLABELLED, DomainBalancedSampler, target_training_labels
from transferkit.data.examples import Split
from transferkit.errors import ConfigError, DataError
from transferkit.heads import ClassificationHead
from transferkit.model import TransferModel
from transferkit.strategies import OptimConfig, parse_strategy
from transferkit.zoo import load_backbone


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
    assert "source validation" in saved["model_selection"] and "resize" in saved["preprocessing"]
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


@pytest.mark.slow
def test_minilm_movie_to_amazon_small(tmp_path):
    report = adapt("builtin:vader-movie", "builtin:vader-amazon", "coral", model="minilm-l6", epochs=1,
                   train_size=240, target_size=240, batch_size=16, max_length=64, test_fraction=0.05,
                   val_fraction=0.05, out=str(tmp_path / "run"), quiet=True, save_models=False)
    # Pretrained MiniLM carries sentiment across domains: far above chance on Amazon from movie data.
    assert report["methods"]["source-only"]["target_accuracy"] > 0.6
    assert report["methods"]["coral"]["target_accuracy"] > 0.6
