"""The exported artifact: its files, that it loads without transferkit (text encoder) and in a
fresh process with identical predictions, that nothing is pickled, and that writes are atomic."""

from __future__ import annotations

import csv
import importlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import transferkit
from transferkit.errors import ModelError
from transferkit.evaluation.metrics import softmax
from transferkit.export import artifact as artifact_module
from transferkit.export.artifact import META_FILE, read_meta, save_artifact
from transferkit.inference import model_logits
from transferkit.zoo import load_backbone
from transferkit.zoo.tiny import tiny_bert_dir

fit_module = importlib.import_module("transferkit.pipeline")  # the module; `transferkit.fit` is meant to be the function

WORDS = {"pos": "good great lovely fun".split(), "neg": "bad awful dull poor".split()}
FILLER = "the film was a plot and it".split()


def write_text_data(path: Path, n: int, regression: bool = False) -> Path:
    rng = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("text", "label"))
        for i in range(n):
            label = ("pos", "neg")[i % 2]
            words = rng.sample(FILLER, 3) + [rng.choice(WORDS[label])]
            writer.writerow((" ".join(words), f"{rng.uniform(-2, 2):.2f}" if regression else label))
    return path


def write_images(root: Path, per_class: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for label, base in (("bright", 200), ("dark", 50)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 25, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


CASES = {
    "text": dict(model="tiny-bert", task="classification", lr=1e-3),
    "image": dict(model="tiny-cnn", task="classification", lr=1e-3),
    # --skip-before: no frozen features are computed before training.
    "regression": dict(model="tiny-bert", task="regression", lr=1e-3, skip_before=True),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny 1-epoch fit per case; the trained in-memory model is captured at export time."""
    root = tmp_path_factory.mktemp("artifacts")
    inputs = {
        "text": write_text_data(root / "text.csv", 60),
        "image": write_images(root / "images"),
        "regression": write_text_data(root / "ratings.csv", 60, regression=True),
    }
    probes = {
        "text": ["a good film", "dull plot and awful", "it"],
        "image": [str(p) for p in sorted((root / "images").rglob("*.png"))[::4]],
        "regression": ["lovely", "the plot was poor and the film was bad"],
    }
    captured = {}
    original = fit_module.save_artifact

    def capture(directory, model, *args, **kwargs):
        captured["model"] = model
        return original(directory, model, *args, **kwargs)

    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFERKIT_HOME", str(root / "home"))  # a fresh feature cache, not the user's
        mp.setattr(fit_module, "save_artifact", capture)
        for name, options in CASES.items():
            result = fit_module.fit(data=str(inputs[name]), strategy="full", epochs=1, batch_size=8, seed=0,
                                     quiet=True, out=str(root / f"run-{name}"), **options)
            results[name] = {"result": result, "model": captured.pop("model"), "items": probes[name]}
    return results


def in_memory_predictions(run) -> np.ndarray:
    model = run["model"]
    outputs = model_logits(model, model.backbone.preprocessor, run["items"])
    return outputs[:, 0] if run["result"].metrics["task"] == "regression" else softmax(outputs)


def as_array(predictions: list[dict], task: str, label_names: list[str]) -> np.ndarray:
    if task == "regression":
        return np.array([p["value"] for p in predictions])
    return np.array([[p["probabilities"][name] for name in label_names] for p in predictions])


@pytest.mark.parametrize("case", list(CASES))
def test_artifact_layout_and_no_pickles(runs, case):
    model_dir = runs[case]["result"].model_dir
    names = {p.name for p in model_dir.iterdir()}
    assert {"transferkit.json", "head.safetensors", "README.md", "split.json"} <= names
    if case == "image":
        assert "backbone.safetensors" in names and "encoder" not in names
    else:
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (model_dir / "encoder").iterdir()}
    files = [p for p in model_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}]
    assert not [p for p in model_dir.parent.rglob(".*tmp*")]  # no temp dirs left in the run


@pytest.mark.parametrize("case", list(CASES))
def test_metadata_describes_the_model(runs, case):
    result = runs[case]["result"]
    meta = read_meta(result.model_dir)
    assert meta["format"] == "transferkit-artifact" and meta["format_version"] == 1
    assert meta["task"] == CASES[case]["task"]
    assert meta["backbone"]["source"] == CASES[case]["model"]
    # The hash identifies the SOURCE weights, not the fine-tuned ones, with or without --skip-before.
    assert meta["backbone"]["source_weights_sha256"] == load_backbone(CASES[case]["model"]).weights_hash()
    assert meta["backbone"]["source_weights_sha256"] != runs[case]["model"].backbone.weights_hash()
    assert meta["label_names"] == ([] if case == "regression" else (["bright", "dark"] if case == "image" else ["neg", "pos"]))
    assert meta["head"]["num_outputs"] == (1 if case == "regression" else 2)
    assert meta["backbone"]["feature_dim"] == runs[case]["model"].backbone.feature_dim
    assert {"torch", "transformers", "python"} <= set(meta["versions"])
    split = json.loads((result.model_dir / "split.json").read_text())
    assert split == json.loads((result.run_dir / "split.json").read_text())
    assert split["sizes"]["test"] == len(split["test"]) > 0
    assert (result.model_dir / "README.md").read_text().strip()


@pytest.mark.parametrize("case", ["text", "regression"])
def test_encoder_directory_loads_with_plain_transformers(runs, case):
    from transformers import AutoModel

    trained = runs[case]["model"].backbone
    encoder_dir = runs[case]["result"].model_dir / "encoder"
    batch = trained.preprocessor.collate(trained.preprocessor.encode(["good film", "a dull and awful plot"]))
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    exported, pretrained = AutoModel.from_pretrained(encoder_dir).eval(), AutoModel.from_pretrained(tiny_bert_dir()).eval()
    trained.eval()
    with torch.inference_mode():
        expected = trained.encoder(**inputs).last_hidden_state
        got = exported(**inputs).last_hidden_state
        untrained = pretrained(**inputs).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(untrained, expected, atol=1e-4)  # the fine-tuned weights were saved


@pytest.fixture(scope="module")
def fresh_process_predictions(runs, tmp_path_factory):
    """Load every artifact with `transferkit.load` in a new interpreter and predict its probes."""
    request = {str(run["result"].model_dir): run["items"] for run in runs.values()}
    request_file = tmp_path_factory.mktemp("fresh") / "request.json"
    request_file.write_text(json.dumps(request))
    code = (
        "import json, sys, transferkit\n"
        "request = json.load(open(sys.argv[1]))\n"
        "print(json.dumps({d: transferkit.load(d).predict(items) for d, items in request.items()}))\n"
    )
    src = str(Path(transferkit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", code, str(request_file)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", list(CASES))
def test_fresh_process_predicts_like_the_trained_model(runs, fresh_process_predictions, case):
    run = runs[case]
    meta = read_meta(run["result"].model_dir)
    predictions = fresh_process_predictions[str(run["result"].model_dir)]
    assert len(predictions) == len(run["items"])
    got = as_array(predictions, meta["task"], meta["label_names"])
    np.testing.assert_allclose(got, in_memory_predictions(run), atol=1e-5, rtol=0)
    if meta["task"] == "classification":
        for p in predictions:
            assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
            assert sum(p["probabilities"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["text", "image"])
def test_run_directory_is_accepted_by_load(runs, case):
    run = runs[case]
    predictor = transferkit.load(run["result"].run_dir)
    assert predictor.directory == run["result"].model_dir
    got = as_array(predictor.predict(run["items"]), predictor.task, predictor.label_names)
    np.testing.assert_allclose(got, in_memory_predictions(run), atol=1e-5, rtol=0)
    assert predictor.predict([]) == []
    assert not any(p.requires_grad for p in predictor.model.parameters())


@pytest.mark.parametrize("layout,pattern", [
    ("missing", "not found"),
    ("empty", "not a transferkit artifact"),
    ("hf-dir", "not a transferkit artifact"),
    ("bad-json", "unreadable"),
    ("foreign-json", "not a transferkit artifact description"),
    ("newer", "newer than this transferkit"),
])
def test_loading_something_that_is_not_an_artifact(tmp_path, layout, pattern):
    path = tmp_path / "model"
    if layout != "missing":
        path.mkdir()
    if layout == "hf-dir":
        (path / "config.json").write_text("{}")
    contents = {"bad-json": "{not json", "foreign-json": json.dumps({"format": "something-else"}),
                "newer": json.dumps({"format": "transferkit-artifact", "format_version": 99})}
    if layout in contents:
        (path / META_FILE).write_text(contents[layout])
    with pytest.raises(ModelError, match=pattern) as info:
        transferkit.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_save_leaves_no_directory_behind(runs, tmp_path, monkeypatch, overwrite):
    run = runs["text"]
    meta = {k: v for k, v in read_meta(run["result"].model_dir).items() if k not in ("format", "format_version")}
    target = tmp_path / "model"
    if overwrite:
        save_artifact(target, run["model"], meta, "card v1")
        before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):  # the head is written after the encoder: this dies midway
        raise OSError("disk full")

    monkeypatch.setattr(artifact_module, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(target, run["model"], meta, "card v2", overwrite=overwrite)
    if overwrite:  # the previous artifact is untouched
        assert {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
        assert [p.name for p in tmp_path.iterdir()] == ["model"]
    else:
        assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_replace_without_overwrite(runs, tmp_path):
    run = runs["image"]
    meta = {k: v for k, v in read_meta(run["result"].model_dir).items() if k not in ("format", "format_version")}
    save_artifact(tmp_path / "model", run["model"], meta, "card")
    with pytest.raises(FileExistsError):
        save_artifact(tmp_path / "model", run["model"], meta, "card")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
