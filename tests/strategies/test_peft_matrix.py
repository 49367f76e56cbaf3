"""The strategy matrix of the parameter-efficient, scheduled and regularised strategies.

Every case trains with `transferkit.fit`, and then, in ONE fresh Python process for all cases,
each artifact is loaded the way users load it; its test logits must equal the logits the
in-memory model produced inside fit (atol 1e-5). Trainable-parameter counts are recomputed here
from the modules' shapes (not from peft), and layer groups that must stay frozen are compared
bit for bit with the source weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import transferkit
from transferkit.zoo import load_backbone

from conftest import make_sentences, write_csv, write_image_folder
from reloading import fit_capturing_logits, fresh_process_logits

HEAD = {"tiny-bert": 32 * 2 + 2, "tiny-cnn": 32 * 2 + 2}  # linear head on 32-d features, 2 classes
CASES = [
    ("lora", "tiny-bert"), ("lora", "tiny-cnn"), ("ia3", "tiny-bert"), ("ia3", "tiny-cnn"),
    ("prefix", "tiny-bert"), ("prefix:kind=prompt", "tiny-bert"), ("bitfit", "tiny-bert"), ("bitfit", "tiny-cnn"),
    ("gradual-unfreeze", "tiny-bert"), ("gradual-unfreeze", "tiny-cnn"), ("full+l2sp", "tiny-bert"),
    ("full+l2sp", "tiny-cnn"), ("freeze-bottom:1+l2sp", "tiny-bert"), ("head-then-full+l2sp", "tiny-bert"),
]
ADAPTERS = ("lora", "ia3", "prefix")


@dataclass
class Trained:
    result: transferkit.FitResult
    in_memory: np.ndarray  # test logits of the model fit held in memory
    items: list


def _modules(model: str, names: tuple[str, ...]) -> dict[str, nn.Module]:
    """The modules peft's rule selects: name == target or name ends with "." + target."""
    backbone = load_backbone(model)
    inner = backbone.encoder if model == "tiny-bert" else backbone.blocks
    return {n: m for n, m in inner.named_modules() if any(n == t or n.endswith("." + t) for t in names)}


def _lora_count(model: str, targets: tuple[str, ...], r: int = 8) -> int:
    """LoRA adds A (r × fan_in) and B (out × r) per adapted layer."""
    total = 0
    for m in _modules(model, targets).values():
        fan_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
        total += r * (fan_in + out)
    return total


def _ia3_count(model: str, targets: tuple[str, ...], feedforward: tuple[str, ...]) -> int:
    """IA3 adds one vector per adapted layer: its input width (feed-forward) or output width."""
    feedforward_names = set(_modules(model, feedforward)) if feedforward else set()
    total = 0
    for name, m in _modules(model, targets).items():
        if isinstance(m, nn.Linear):
            total += m.in_features if name in feedforward_names else m.out_features
        else:
            total += m.out_channels
    return total


def _used(model: str, groups: range | None = None) -> int:
    layer_groups = load_backbone(model).layer_groups()
    chosen = range(len(layer_groups)) if groups is None else groups
    return sum(p.numel() for g in chosen for _, p in layer_groups[g])


def _biases(model: str) -> int:
    return sum(p.numel() for group in load_backbone(model).layer_groups() for n, p in group if n.endswith("bias"))


def expected_trainable(spec: str, model: str) -> int:
    """Trainable parameters when training starts (tiny-bert: 2 layers, hidden 32)."""
    bert = model == "tiny-bert"
    counts = {
        "lora": lambda: _lora_count(model, ("query", "value") if bert else ("0.0", "1.0", "2.0")),
        "ia3": lambda: (_ia3_count(model, ("key", "value", "output.dense"), ("output.dense",)) if bert
                        else _ia3_count(model, ("0.0", "1.0", "2.0"), ())),
        "prefix": lambda: 20 * 2 * 2 * 32,  # virtual tokens × layers × (key, value) × hidden
        "prefix:kind=prompt": lambda: 20 * 32,  # virtual tokens × embedding width
        "bitfit": lambda: _biases(model),
        "gradual-unfreeze": lambda: 0,  # epoch 0: the head only
        "full+l2sp": lambda: _used(model),
        "freeze-bottom:1+l2sp": lambda: _used(model, range(1, 3)),
        "head-then-full+l2sp": lambda: 0,  # the head only during head_epochs
    }
    return counts[spec]() + HEAD[model]


def frozen_groups(spec: str) -> set[int]:
    """Layer groups (of 3) that must end bit-identical to the source, for full artifacts."""
    return {"gradual-unfreeze": {0, 1}, "freeze-bottom:1+l2sp": {0}}.get(spec, set())


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict[tuple[str, str], Trained]:
    root = tmp_path_factory.mktemp("peft-matrix")
    data = {"tiny-bert": str(write_csv(root / "reviews.csv", make_sentences(120))),
            "tiny-cnn": str(write_image_folder(root / "images"))}
    trained = {}
    for spec, model in CASES:
        result, in_memory = fit_capturing_logits(data=data[model], model=model, strategy=spec, epochs=2, batch_size=8,
                                                 lr=1e-3, out=str(root / f"{model}-{spec}"), quiet=True, patience=0,
                                                 metric="loss")
        items = transferkit.data.prepare_task_data(data[model], seed=0).test.items
        trained[(spec, model)] = Trained(result, in_memory, list(items))
    return trained


@pytest.fixture(scope="module")
def reloaded(matrix, tmp_path_factory) -> dict[tuple[str, str], np.ndarray]:
    """Test logits of every artifact, loaded with transferkit.load in one fresh process."""
    logits = fresh_process_logits([(t.result.model_dir, t.items) for t in matrix.values()],
                                  tmp_path_factory.mktemp("fresh"))
    return dict(zip(matrix, logits))


@pytest.mark.parametrize("spec, model", CASES)
def test_fresh_process_reload_predicts_identically(matrix, reloaded, spec, model):
    trained = matrix[(spec, model)]
    assert trained.result.metrics["epochs_run"] == 2
    np.testing.assert_allclose(reloaded[(spec, model)], trained.in_memory, atol=1e-5, rtol=0)


def expected_most_trainable(spec: str, model: str) -> int:
    """The most parameters that trained in any of the matrix's 2 epochs: schedules unfreeze more."""
    later = {"gradual-unfreeze": lambda: _used(model, range(2, 3)),  # epoch 1: the top layer group too
             "head-then-full+l2sp": lambda: _used(model)}  # epoch 1: everything
    return later[spec]() + HEAD[model] if spec in later else expected_trainable(spec, model)


@pytest.mark.parametrize("spec, model", CASES)
def test_trainable_parameter_count(matrix, spec, model):
    metrics = matrix[(spec, model)].result.metrics
    assert metrics["trainable_params_at_start"] == expected_trainable(spec, model)
    assert metrics["trainable_params"] == expected_most_trainable(spec, model)


@pytest.mark.parametrize("spec, model", [c for c in CASES if c[0].split(":")[0] in ADAPTERS])
def test_adapter_artifact_holds_the_adapter_and_head_only(matrix, spec, model):
    model_dir = matrix[(spec, model)].result.model_dir
    assert (model_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (model_dir / "adapter" / "adapter_config.json").is_file()
    assert (model_dir / "head.safetensors").is_file()
    assert not (model_dir / "encoder").exists() and not (model_dir / "backbone.safetensors").exists()
    meta = json.loads((model_dir / "transferkit.json").read_text())
    assert meta["backbone"]["adapter"]["bytes"] < meta["backbone"]["adapter"]["full_model_bytes"]
    assert meta["backbone"]["source_weights_sha256"] == load_backbone(model).weights_hash()
    assert "adapter-only artifact" in (model_dir / "README.md").read_text()


@pytest.mark.parametrize("spec, model", [("lora", "tiny-bert"), ("lora", "tiny-cnn"), ("ia3", "tiny-bert")])
def test_adapter_weights_moved_from_their_initialisation(matrix, spec, model):
    from safetensors.torch import load_file

    weights = load_file(str(matrix[(spec, model)].result.model_dir / "adapter" / "adapter_model.safetensors"))
    if spec == "lora":  # B starts at zero
        assert all(t.abs().sum() > 0 for name, t in weights.items() if "lora_B" in name)
    else:  # IA3 vectors start at one
        assert all(not torch.allclose(t, torch.ones_like(t)) for t in weights.values())


@pytest.mark.parametrize("spec, model", [c for c in CASES if c[0].split(":")[0] not in ADAPTERS])
def test_frozen_groups_unchanged_and_trained_groups_moved(matrix, spec, model):
    source = load_backbone(model)
    trained = dict(transferkit.load(matrix[(spec, model)].result.model_dir).model.backbone.named_parameters())
    for index, group in enumerate(source.layer_groups()):
        weights = [(n, p) for n, p in group if not (spec == "bitfit" and n.endswith("bias"))]
        same = [torch.equal(p, trained[n]) for n, p in weights]
        if spec == "bitfit" or index in frozen_groups(spec):
            assert all(same), f"group {index} changed under {spec}"
        else:
            assert not all(same), f"group {index} did not train under {spec}"
    if spec == "bitfit":
        assert not all(torch.equal(p, trained[n]) for g in source.layer_groups() for n, p in g if n.endswith("bias"))
