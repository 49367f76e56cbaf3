"""Every export format on tiny text and image models: what it writes, what its verification
found, and that `transferkit.load` / `transferkit predict` on it reproduce those figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import transferkit
from exporting import (CELLS, SUPPORTED, UNSUPPORTED, export_dir, exported, no_leftovers, read_json, source_test_split,
                       sources)
from transferkit.cli.main import main
from transferkit.errors import ConfigError, ModelError
from transferkit.export.artifact import load_model, read_meta
from transferkit.export.exporter import artifact_sha256
from transferkit.export.report import write_compression_report

VERIFICATION_KEYS = ("agreement", "max_abs_logit_diff", "accuracy_source", "accuracy_export", "size_mb",
                     "latency_ms_b1", "throughput_b32")
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}


@pytest.mark.parametrize("modality,fmt", CELLS, ids=[f"{m}-{f}" for m, f in CELLS])
def test_each_format_writes_a_verified_artifact(tmp_path_factory, modality, fmt):
    result = exported(tmp_path_factory, modality, fmt)
    source = sources(tmp_path_factory)[modality]
    if (modality, fmt) in UNSUPPORTED:
        assert isinstance(result, ConfigError)
        assert f"--format {fmt}" in str(result) and "tiny-cnn" in str(result) and "onnx-int8" in str(result)
        assert no_leftovers(export_dir(tmp_path_factory, modality, fmt))
        return
    out = result.directory
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"transferkit.json", "split.json", "verification.json", "README.md", "report.md", "report.html",
            "latency_accuracy.png"} <= files
    assert not [f for f in files if f.rsplit(".", 1)[-1] in {s[1:] for s in PICKLE_SUFFIXES}]
    assert ("model.onnx" in files) == fmt.startswith("onnx")
    meta = read_meta(out)
    assert meta["export"]["format"] == fmt
    assert meta["export"]["source"]["path"] == str(source.resolve())
    assert meta["export"]["source"]["sha256"] == artifact_sha256(source)
    assert (out / "split.json").read_text() == (source / "split.json").read_text()
    assert meta["data"] == read_meta(source)["data"] and meta["label_names"] == read_meta(source)["label_names"]

    verification = read_json(out / "verification.json")
    assert verification == result.verification
    assert all(isinstance(verification[key], float) for key in VERIFICATION_KEYS)
    assert 0.0 <= verification["agreement"] <= 1.0 and verification["max_abs_logit_diff"] >= 0.0
    assert verification["size_mb"] > 0 and verification["latency_ms_b1"] > 0 and verification["throughput_b32"] > 0
    assert verification["measurement"]["threads"]["torch_intra_op_threads"] >= 1
    items, _ = source_test_split(source)
    assert verification["n"] == len(items) == len(read_json(source / "split.json")["test"])
    # The fp32 accuracy measured in the fresh process is the one `fit` reported on the same test split.
    assert verification["accuracy_source"] == pytest.approx(read_meta(source)["metrics"]["after"]["accuracy"])
    assert verification["accuracy_drop_points"] <= 1.0


@pytest.mark.parametrize("modality", ["text", "image"])
def test_onnx_reproduces_the_source(tmp_path_factory, modality):
    verification = exported(tmp_path_factory, modality, "onnx").verification
    assert verification["agreement"] == 1.0
    assert verification["max_abs_logit_diff"] < 1e-4


@pytest.mark.parametrize("modality,fmt", SUPPORTED, ids=[f"{m}-{f}" for m, f in SUPPORTED])
def test_load_predicts_what_verification_measured(tmp_path_factory, modality, fmt):
    result = exported(tmp_path_factory, modality, fmt)
    items, targets = source_test_split(sources(tmp_path_factory)[modality])
    source_logits = transferkit.load(sources(tmp_path_factory)[modality]).logits(items)
    model = transferkit.load(result.directory)  # default batches, as verified (int8 scales activations per batch)
    logits = model.logits(items)
    v = result.verification
    assert np.mean(logits.argmax(1) == source_logits.argmax(1)) == pytest.approx(v["agreement"])
    assert np.max(np.abs(logits - source_logits)) == pytest.approx(v["max_abs_logit_diff"], abs=1e-5)
    assert np.mean(logits.argmax(1) == np.array(targets)) == pytest.approx(v["accuracy_export"])
    labels = [p["label"] for p in model.predict(items)]
    assert labels == [model.label_names[i] for i in logits.argmax(1)]


def test_onnx_graph_takes_any_batch_and_length(tmp_path_factory):
    model = transferkit.load(exported(tmp_path_factory, "text", "onnx").directory)
    texts = ["good", "the plot was awful and the actors were dull, really a boring movie", "it was fun"]
    one_by_one = np.concatenate([model.logits([text]) for text in texts])
    np.testing.assert_allclose(model.logits(texts), one_by_one, atol=1e-5, rtol=0)
    assert model.runtime.input_names == ["input_ids", "attention_mask"]


def test_int8_is_quantized_again_at_load_from_the_float_weights(tmp_path_factory):
    out = exported(tmp_path_factory, "text", "int8").directory
    source = sources(tmp_path_factory)["text"]
    stored, original = load_file(str(out / "encoder" / "model.safetensors")), load_file(str(source / "encoder" / "model.safetensors"))
    assert stored.keys() == original.keys() and all(torch.equal(stored[k], original[k]) for k in stored)
    model, _, _ = load_model(out)
    quantized = [m for m in model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    kept = [m for m in model.modules() if type(m) is torch.nn.Linear]
    source_linear = [m for m in load_model(source)[0].modules() if isinstance(m, torch.nn.Linear)]
    down = [m for m in source_linear if m.in_features > m.out_features]  # FFN output layers and the head
    assert len(quantized) == len(source_linear) - len(down) > 0
    assert len(kept) == len(down) > 0 and all(m.in_features > m.out_features for m in kept)
    # One scale per output channel, symmetric (zero points 0).
    assert all(m.weight().qscheme() == torch.per_channel_affine and not m.weight().q_per_channel_zero_points().any()
               for m in quantized)
    texts = ["good film", "dull and awful"]
    np.testing.assert_array_equal(transferkit.load(out).logits(texts), transferkit.load(out).logits(texts))


def test_pruned_reaches_its_sparsity_and_keeps_it_through_recovery(tmp_path_factory):
    result = exported(tmp_path_factory, "text", "pruned")
    export = read_meta(result.directory)["export"]
    assert export["target_sparsity"] == 0.5 and export["recovery"]["epochs"] == 1
    model, _, _ = load_model(result.directory)
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)
               and not any(m is p for p in model.backbone.encoder.pooler.modules())]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=1e-3) and export["sparsity"] == pytest.approx(zeros)
    source_weights = [m.weight for m in load_model(sources(tmp_path_factory)["text"])[0].modules() if isinstance(m, torch.nn.Linear)]
    assert sum(int((w == 0).sum()) for w in source_weights) == 0


def test_onnx_export_has_no_pytorch_model(tmp_path_factory):
    out = exported(tmp_path_factory, "image", "onnx-int8").directory
    with pytest.raises(ModelError, match="no PyTorch"):
        load_model(out)
    with pytest.raises(ModelError, match="ONNX export"):
        transferkit.load(out).model


def test_predict_command_runs_an_onnx_export(tmp_path_factory, tmp_path):
    out = exported(tmp_path_factory, "text", "onnx-int8").directory
    texts = ["a lovely and fun film", "boring and awful", "the plot"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["predict", "--model", str(out), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [p["label"] for p in transferkit.load(out).predict(texts)]


def test_compression_report_compares_every_format(tmp_path_factory, tmp_path):
    verifications = [exported(tmp_path_factory, "text", fmt).verification for fmt in ("int8", "onnx", "onnx-int8", "pruned")]
    paths = write_compression_report(tmp_path, verifications, "tiny-bert exports")
    assert [p.name for p in paths] == ["report.md", "report.html", "latency_accuracy.png"]
    table = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0].strip("| ") for line in table] == ["fp32", "int8", "onnx", "onnx-int8", "pruned"]
    median_source = float(np.median([v["source"]["throughput_b32"] for v in verifications]))
    assert f"{median_source:.1f}" in table[0]
    assert "<table>" in (tmp_path / "report.html").read_text() and (tmp_path / "latency_accuracy.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="one source"):
        write_compression_report(tmp_path, [verifications[0], exported(tmp_path_factory, "image", "onnx").verification], "mixed")


def test_onnx_int8_graph_is_smaller_than_the_float_graph(tmp_path_factory):
    for modality in ("text", "image"):
        sizes = {fmt: (exported(tmp_path_factory, modality, fmt).directory / "model.onnx").stat().st_size
                 for fmt in ("onnx", "onnx-int8")}
        assert sizes["onnx-int8"] < sizes["onnx"]

