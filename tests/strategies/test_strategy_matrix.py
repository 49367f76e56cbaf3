"""The strategy matrix: every strategy × a tiny text and a tiny vision backbone.

Checks what actually trains (frozen weights stay bit-identical to the source), that the artifact
reloads and predicts exactly like the in-memory model, and the strategy spec parser.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import transferkit
from transferkit.errors import ConfigError
from transferkit.strategies import STRATEGIES, parse_strategy
from transferkit.zoo import load_backbone

STRATEGY_SPECS = ["linear-probe", "freeze-bottom:1", "full", "head-then-full"]
BACKBONES = ["tiny-bert", "tiny-cnn"]


def _frozen_groups(spec: str, n_groups: int) -> set[int]:
    """Layer groups that must end training bit-identical to the pretrained weights."""
    return {"linear-probe": set(range(n_groups)), "freeze-bottom:1": {0}, "full": set(), "head-then-full": set()}[spec]


@pytest.fixture
def data_for(text_csv, image_folder):
    return {"tiny-bert": str(text_csv), "tiny-cnn": str(image_folder)}


@pytest.mark.parametrize("model", BACKBONES)
@pytest.mark.parametrize("spec", STRATEGY_SPECS)
def test_strategy_trains_saves_and_reloads(spec, model, data_for, tmp_path):
    result = transferkit.fit(data=data_for[model], model=model, strategy=spec, epochs=2, batch_size=8,
                             lr=1e-3, out=str(tmp_path / "run"), quiet=True, patience=0, metric="loss")
    metrics = result.metrics
    assert 0 < metrics["trainable_params"] <= metrics["total_params"]
    assert metrics["epochs_run"] == 2
    assert metrics["before"]["accuracy"] >= 0 and metrics["after"]["accuracy"] >= 0

    # Frozen layer groups end bit-identical to the source weights; trained ones moved.
    source = load_backbone(model)
    reloaded = transferkit.load(result.model_dir)
    trained = dict(reloaded.model.backbone.named_parameters())
    frozen = _frozen_groups(spec, len(source.layer_groups()))
    for index, group in enumerate(source.layer_groups()):
        same = [torch.equal(param, trained[name]) for name, param in group]
        if index in frozen:
            assert all(same), f"group {index} changed under {spec}"
        else:
            assert not all(same), f"group {index} did not train under {spec}"

    # The reloaded artifact predicts exactly what metrics.json reports.
    split = transferkit.data.prepare_task_data(data_for[model], seed=0)
    outputs = reloaded.logits(split.test.items)
    accuracy = float((outputs.argmax(1) == split.test.targets).mean())
    assert accuracy == pytest.approx(metrics["after"]["accuracy"], abs=1e-9)


def test_linear_probe_trains_head_only_and_majority_baseline(text_csv, tmp_path):
    result = transferkit.fit(data=str(text_csv), model="tiny-bert", strategy="linear-probe", epochs=1,
                             out=str(tmp_path / "run"), quiet=True)
    head_params = 32 * 2 + 2
    assert result.metrics["trainable_params"] == head_params
    assert "majority" in result.metrics["before"]["description"]


def test_head_then_full_unfreezes_after_head_epochs():
    from transferkit.heads import ClassificationHead
    from transferkit.model import TransferModel

    strategy = parse_strategy("head-then-full:head_epochs=1,decay=0.5")
    model = TransferModel(load_backbone("tiny-bert"), ClassificationHead(32, 2))
    strategy.prepare(model)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    strategy.on_epoch_start(model, 1)
    groups = model.backbone.layer_groups()
    assert all(p.requires_grad for group in groups for _, p in group)
    optim = transferkit.strategies.OptimConfig(lr=1.0, head_lr=2.0, weight_decay=0.0, epochs=2)
    rates = {g["name"]: g["lr"] for g in strategy.param_groups(model, optim)}
    top = len(groups) - 1
    assert rates[f"backbone.{top}.decay"] == 1.0
    assert rates["backbone.0.decay"] == pytest.approx(0.5 ** top)
    assert rates["head.decay"] == 2.0


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown strategy"),
    ("freeze-bottom:x", "must be a int"),
    ("freeze-bottom:k=-1", "k must be >= 0"),
    ("full:3", "unexpected value"),
    ("head-then-full:decay=0", "decay in (0, 1]"),
    ("freeze-bottom:depth=2", "unknown option 'depth'"),
])
def test_bad_strategy_specs(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_strategy(spec)


def test_freeze_bottom_beyond_depth_is_a_clear_error(text_csv, tmp_path):
    with pytest.raises(ConfigError, match="only 3 layer groups"):
        transferkit.fit(data=str(text_csv), model="tiny-bert", strategy="freeze-bottom:3", epochs=1,
                        out=str(tmp_path / "run"), quiet=True)


def test_registry_and_spec_round_trip():
    assert {spec.split(":")[0] for spec in STRATEGY_SPECS} <= set(STRATEGIES)
    for spec in STRATEGY_SPECS:
        strategy = parse_strategy(spec)
        assert parse_strategy(strategy.spec()).options == strategy.options


def test_frozen_batchnorm_keeps_running_statistics(image_folder, tmp_path):
    result = transferkit.fit(data=str(image_folder), model="tiny-cnn", strategy="freeze-bottom:2", epochs=1,
                             out=str(tmp_path / "run"), quiet=True)
    source = load_backbone("tiny-cnn").state_dict()
    trained = transferkit.load(result.model_dir).model.backbone.state_dict()
    for name in ("blocks.0.1.running_mean", "blocks.1.1.running_var"):
        assert torch.equal(source[name], trained[name]), name
    assert not torch.equal(source["blocks.2.1.running_mean"], trained["blocks.2.1.running_mean"])
    assert np.isfinite(result.metrics["after"]["accuracy"])
