"""Specs, modifiers, learning-rate shaping and bad input of the PEFT, schedule and L2-SP strategies.

Bad input must fail with one ConfigError before anything is written (the run directory never
appears).
"""

from __future__ import annotations

import pytest
import torch

import transferkit
from transferkit.errors import ConfigError
from transferkit.heads import ClassificationHead
from transferkit.model import TransferModel
from transferkit.strategies import OptimConfig, parse_strategy
from transferkit.strategies.base import Composed
from transferkit.zoo import load_backbone


def _model(name: str = "tiny-bert") -> TransferModel:
    backbone = load_backbone(name)
    return TransferModel(backbone, ClassificationHead(backbone.feature_dim, 2))


def _rates(strategy, model, **optim) -> dict[str, float]:
    settings = {"lr": 1.0, "head_lr": 2.0, "weight_decay": 0.01, "epochs": 2, **optim}
    return {g["name"]: g["lr"] for g in strategy.param_groups(model, OptimConfig(**settings))}


@pytest.mark.parametrize("spec", [
    "lora:r=4,alpha=8.0,dropout=0.0,targets=query/key/value,lr_scale=5.0", "ia3:targets=key/value,feedforward=,lr_scale=60.0",
    "prefix:virtual_tokens=5,kind=prompt,lr_scale=100.0", "bitfit:lr_scale=10.0", "gradual-unfreeze:step=2",
    "full+l2sp:alpha=0.1,beta=0.02", "head-then-full:head_epochs=1,decay=0.5+l2sp:alpha=0.01,beta=0.01",
])
def test_spec_round_trip(spec):
    strategy = parse_strategy(spec)
    assert strategy.spec() == spec
    assert parse_strategy(strategy.spec()).spec() == spec


def test_modifier_composes_with_the_base_strategy():
    strategy = parse_strategy("freeze-bottom:1+l2sp:alpha=0.5")
    assert isinstance(strategy, Composed) and strategy.name == "freeze-bottom"
    assert strategy.base.options.k == 1 and strategy.modifiers[0].options.alpha == 0.5


@pytest.mark.parametrize("spec, message", [
    ("lora:r=0", "r (the rank) must be >= 1"),
    ("lora:dropout=1", "dropout in [0, 1)"),
    ("lora:r=two", "r must be a int"),
    ("ia3:lr_scale=0", "lr_scale must be > 0"),
    ("prefix:kind=suffix", "kind must be prefix or prompt"),
    ("prefix:virtual_tokens=0", "virtual_tokens must be >= 1"),
    ("gradual-unfreeze:step=0", "step must be >= 1"),
    ("full+nope", "unknown modifier 'nope'"),
    ("full+l2sp:gamma=1", "modifier l2sp: unknown option 'gamma'"),
    ("full+l2sp:alpha=-1", "alpha and beta must be >= 0"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_strategy(spec)


@pytest.mark.parametrize("model, spec, options, message", [
    ("tiny-bert", "lora:targets=nope", {}, "no module named 'nope'; adaptable modules: query, key, value, dense"),
    ("tiny-bert", "lora:targets=LayerNorm", {}, "'LayerNorm' in tiny-bert is a LayerNorm, which lora cannot adapt"),
    ("tiny-bert", "lora:r=64", {}, "r=64 exceeds the rank of the smallest adapted weight of tiny-bert \\(32\\)"),
    ("tiny-cnn", "lora:targets=blocks", {}, "no module named 'blocks'"),
    ("tiny-bert", "ia3:targets=key,feedforward=value", {}, "feedforward modules must also be targets"),
    ("tiny-cnn", "prefix", {}, "strategy prefix does not apply to image backbones"),
    ("tiny-bert", "lora+l2sp", {}, "l2sp keeps fine-tuned pretrained weights near their start, and lora trains none"),
    ("tiny-bert", "linear-probe+l2sp", {}, "linear-probe trains none"),
    ("tiny-bert", "linear-probe", {"layer_decay": 0.8}, "--layer-decay has no effect with linear-probe"),
    ("tiny-bert", "head-then-full", {"layer_decay": 0.8}, "use head-then-full:decay=0.8 instead of --layer-decay"),
])
def test_bad_input_is_one_config_error_and_writes_nothing(model, spec, options, message, text_csv, image_folder, tmp_path):
    data = text_csv if model == "tiny-bert" else image_folder
    with pytest.raises(ConfigError, match=message):
        transferkit.fit(data=str(data), model=model, strategy=spec, epochs=1, out=str(tmp_path / "run"), quiet=True,
                        **options)
    assert not (tmp_path / "run").exists()


def test_layer_decay_multiplies_each_lower_group():
    model = _model()
    strategy = parse_strategy("full")
    strategy.prepare(model)
    rates = _rates(strategy, model, layer_decay=0.5)
    assert rates["backbone.2.decay"] == 1.0 and rates["backbone.1.decay"] == 0.5 and rates["backbone.0.decay"] == 0.25
    assert rates["head.decay"] == 2.0
    assert _rates(strategy, model)["backbone.0.decay"] == 1.0  # layer_decay 1: off


def test_peft_rates_scale_the_backbone_side_only_and_keep_layer_decay():
    model = _model()
    strategy = parse_strategy("lora:lr_scale=10")
    strategy.prepare(model)
    rates = _rates(strategy, model, layer_decay=0.5)
    assert rates["backbone.2.decay"] == 10.0 and rates["backbone.1.decay"] == 5.0 and rates["head.decay"] == 2.0
    lora_params = {id(p) for n, p in model.named_parameters() if "lora_" in n}
    groups = strategy.param_groups(model, OptimConfig(lr=1.0, head_lr=2.0, weight_decay=0.01, epochs=1))
    assert sum(id(p) in lora_params for g in groups for p in g["params"]) == len(lora_params)


def test_ia3_vectors_get_no_weight_decay_but_the_head_does():
    model = _model()
    strategy = parse_strategy("ia3")
    strategy.prepare(model)
    groups = strategy.param_groups(model, OptimConfig(lr=1.0, head_lr=2.0, weight_decay=0.1, epochs=1))
    decay = {g["name"]: g["weight_decay"] for g in groups}
    assert all(v == 0.0 for k, v in decay.items() if k.startswith("backbone."))
    assert decay["head.decay"] == 0.1


def test_prepare_is_idempotent_and_the_head_always_trains():
    model = _model()
    strategy = parse_strategy("lora")
    strategy.prepare(model)
    counts = model.parameter_counts()
    strategy.prepare(model)  # the loop prepares again
    assert model.parameter_counts() == counts
    assert all(p.requires_grad for p in model.head.parameters())
    assert strategy.options.targets == "query/value"  # the resolved defaults are recorded in the spec


def test_gradual_unfreeze_adds_one_group_per_epoch_from_the_top():
    model = _model()
    strategy = parse_strategy("gradual-unfreeze")
    groups = model.backbone.layer_groups()

    def trainable() -> list[bool]:
        return [all(p.requires_grad for _, p in g) for g in groups]

    strategy.prepare(model)
    assert trainable() == [False, False, False]
    strategy.on_epoch_start(model, 1)
    assert trainable() == [False, False, True]
    strategy.on_epoch_start(model, 2)
    assert trainable() == [False, True, True]
    strategy.on_epoch_start(model, 9)
    assert trainable() == [True, True, True]
    assert all(p.requires_grad for p in model.head.parameters())


def test_l2sp_penalty_is_the_distance_to_the_pretrained_weights():
    model = _model()
    strategy = parse_strategy("full+l2sp:alpha=0.3,beta=0.2")
    strategy.prepare(model)
    start = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    used = {n for group in model.backbone.layer_groups() for n, _ in group}
    expected = 0.15 * sum(((p - start[n]) ** 2).sum() for n, p in model.backbone.named_parameters() if n in used)
    expected = expected + 0.1 * sum((p ** 2).sum() for p in model.head.parameters())
    penalty = strategy.extra_losses(model, {}, {})["l2sp"]
    assert penalty.item() == pytest.approx(float(expected), rel=1e-5)
    groups = strategy.param_groups(model, OptimConfig(lr=1.0, head_lr=1.0, weight_decay=0.1, epochs=1))
    assert all(g["weight_decay"] == 0.0 for g in groups)  # L2-SP replaces weight decay


def test_l2sp_keeps_the_backbone_closer_to_its_start(text_csv, tmp_path):
    source = dict(load_backbone("tiny-bert").named_parameters())

    def distance(spec: str) -> float:
        result = transferkit.fit(data=str(text_csv), model="tiny-bert", strategy=spec, epochs=2, batch_size=8, lr=1e-3,
                                 out=str(tmp_path / spec), quiet=True, patience=0, skip_before=True)
        trained = dict(transferkit.load(result.model_dir).model.backbone.named_parameters())
        return sum(float(((trained[n] - p) ** 2).sum()) for n, p in source.items() if n in trained) ** 0.5

    assert distance("full+l2sp:alpha=100,beta=0.01") < 0.5 * distance("full")


def test_a_killed_lora_run_resumes_to_the_same_adapter(text_csv, tmp_path, monkeypatch):
    """The checkpoint holds the wrapped model; resuming re-wraps it and ends where an unbroken run ends."""
    import transferkit.train.loop as loop
    from safetensors.torch import load_file

    options = dict(data=str(text_csv), model="tiny-bert", strategy="lora", epochs=3, batch_size=8, lr=1e-3, quiet=True,
                   patience=0, skip_before=True)
    unbroken = transferkit.fit(out=str(tmp_path / "unbroken"), **options).model_dir

    class Killed(Exception):
        pass

    real_save, saved = loop.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        saved.append(1)
        if len(saved) == 2:  # killed after the second epoch's checkpoint
            raise Killed

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        transferkit.fit(out=str(tmp_path / "resumed"), **options)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed = transferkit.fit(out=str(tmp_path / "resumed"), resume=True, **options).model_dir
    for name in ("adapter/adapter_model.safetensors", "head.safetensors"):
        left, right = load_file(str(unbroken / name)), load_file(str(resumed / name))
        assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left), name
