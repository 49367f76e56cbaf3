"""`transferkit export` on bad input and on failed verification: one clear line, exit status 2,
and nothing written (no --out, no temporary sibling, an existing --out untouched)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_sentences, write_csv
from exporting import exported, no_leftovers, read_json, sources
from transferkit.cli.main import main
from transferkit.errors import VerificationError
from transferkit.export import exporter, onnx_export
from transferkit.export.exporter import export_model

SRC = Path(__file__).resolve().parents[2] / "src"


def edited_copy(source: Path, target: Path, **changes) -> Path:
    """A copy of an artifact with top-level transferkit.json entries replaced."""
    shutil.copytree(source, target)
    meta = read_json(target / "transferkit.json")
    for key, value in changes.items():
        meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
    (target / "transferkit.json").write_text(json.dumps(meta), encoding="utf-8")
    return target


def cases(text: Path, image: Path, d: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name: (argv after `export`, what the error line must name)."""
    (d / "plain").mkdir()
    out = str(d / "out")
    return {
        "unknown_format": (["--model", str(text), "--format", "fp16", "--out", out], ["'fp16'", "onnx-int8"]),
        "int8_on_a_cnn": (["--model", str(image), "--format", "int8", "--out", out], ["int8", "tiny-cnn", "onnx-int8"]),
        "sparsity_one": (["--model", str(text), "--format", "pruned", "--sparsity", "1", "--out", out], ["--sparsity", "[0, 1)"]),
        "sparsity_negative": (["--model", str(text), "--format", "pruned", "--sparsity", "-0.1", "--out", out], ["--sparsity", "-0.1"]),
        "sparsity_not_pruning": (["--model", str(text), "--format", "onnx", "--sparsity", "0.3", "--out", out], ["--sparsity", "pruned"]),
        "not_an_artifact": (["--model", str(d / "plain"), "--format", "onnx", "--out", out], [str(d / "plain"), "not a transferkit artifact"]),
        "missing_model": (["--model", str(d / "nowhere"), "--format", "onnx", "--out", out], [str(d / "nowhere"), "not found"]),
        "out_inside_source": (["--model", str(text), "--format", "onnx", "--out", str(text / "onnx")], ["--out", "overlaps"]),
        "regression_model": (["--model", str(edited_copy(text, d / "regression", task="regression")), "--format", "onnx", "--out", out],
                             ["regression", "classification"]),
        "adapter_artifact": (["--model", str(edited_copy(text, d / "lora", backbone={"adapter": {"method": "lora"}})),
                              "--format", "int8", "--out", out], ["lora adapter", "transferkit merge"]),
        "data_gone": (["--model", str(edited_copy(text, d / "moved", data={"data": str(d / "gone.csv")})), "--format", "onnx",
                       "--out", out], ["gone.csv", "--verify-data"]),
    }


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> tuple[Path, Path]:
    made = sources(tmp_path_factory)
    return made["text"], made["image"]


def check_one_line_failure(code: int, stderr: str, mentions: list[str]) -> None:
    assert "Traceback" not in stderr, stderr
    assert code == 2, (code, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("transferkit: error:"), lines
    for needle in mentions:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"


@pytest.mark.parametrize("name", ["unknown_format", "int8_on_a_cnn", "sparsity_one", "sparsity_negative", "sparsity_not_pruning",
                                  "not_an_artifact", "missing_model", "out_inside_source", "regression_model",
                                  "adapter_artifact", "data_gone"])
def test_bad_input_fails_with_one_line_and_writes_nothing(artifacts, tmp_path, capsys, name):
    argv, mentions = cases(*artifacts, tmp_path)[name]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["export", *argv, "--quiet"])
    check_one_line_failure(code, capsys.readouterr().err, mentions)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (artifacts[0] / "onnx").exists()


def test_existing_out_is_refused_and_untouched(artifacts, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    code = main(["export", "--model", str(artifacts[0]), "--format", "onnx", "--out", str(tmp_path / "out"), "--quiet"])
    check_one_line_failure(code, capsys.readouterr().err, [str(tmp_path / "out"), "--overwrite"])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_an_export_is_not_exported_again(tmp_path_factory, tmp_path, capsys):
    onnx_dir = exported(tmp_path_factory, "text", "onnx").directory
    code = main(["export", "--model", str(onnx_dir), "--format", "int8", "--out", str(tmp_path / "out"), "--quiet"])
    check_one_line_failure(code, capsys.readouterr().err, ["already a onnx export", str(sources(tmp_path_factory)["text"].resolve())])


def test_unsupported_format_in_a_real_process(artifacts, tmp_path):
    env = {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "transferkit.cli.main", "export", "--model", str(artifacts[1]), "--format",
                           "int8", "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    check_one_line_failure(done.returncode, done.stderr, ["int8", "tiny-cnn"])
    assert no_leftovers(tmp_path / "out")


def test_accuracy_drop_over_max_drop_fails_and_writes_nothing(artifacts, tmp_path, capsys):
    # --max-drop -1 demands an export 1 point MORE accurate than its source: verification must fail.
    code = main(["export", "--model", str(artifacts[1]), "--format", "pruned", "--sparsity", "0.2", "--out",
                 str(tmp_path / "out"), "--max-drop", "-1", "--quiet"])
    check_one_line_failure(code, capsys.readouterr().err, ["pruned export failed verification", "--max-drop -1", "nothing was written"])
    assert no_leftovers(tmp_path / "out")


def test_failed_verification_keeps_the_previous_export(artifacts, tmp_path, monkeypatch):
    first = export_model(artifacts[1], "onnx", tmp_path / "out", quiet=True)
    before = {p: p.read_bytes() for p in first.directory.rglob("*") if p.is_file()}
    real_compare = exporter.compare

    def worse(*args):  # as if the export got a third of the test split wrong that the source got right
        figures = real_compare(*args)
        return {**figures, "accuracy_export": figures["accuracy_source"] - 0.33, "accuracy_drop_points": 33.0}

    monkeypatch.setattr(exporter, "compare", worse)
    with pytest.raises(VerificationError, match="a drop of 33.00 points > --max-drop 1"):
        export_model(artifacts[1], "onnx", tmp_path / "out", overwrite=True, quiet=True)
    assert {p: p.read_bytes() for p in first.directory.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_artifact_that_does_not_load_fails_verification(artifacts, tmp_path, monkeypatch):
    def broken_graph(model, path):  # a build that writes a file ONNX Runtime cannot read
        path.write_bytes(b"not an onnx graph")
        return {"graph": path.name}

    monkeypatch.setattr(onnx_export, "export_graph", broken_graph)
    with pytest.raises(VerificationError, match="failed to run in a fresh process"):
        export_model(artifacts[1], "onnx", tmp_path / "out", quiet=True)
    assert no_leftovers(tmp_path / "out")


def test_verify_data_replaces_the_test_split(artifacts, tmp_path):
    other = write_csv(tmp_path / "other.csv", make_sentences(50, seed=7))
    result = export_model(artifacts[0], "onnx", tmp_path / "out", verify_data=str(other), quiet=True)
    assert result.verification["n"] == 50 and str(other) in result.verification["data"]
    assert result.verification["agreement"] == 1.0
