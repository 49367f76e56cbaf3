"""`transferkit distill` end to end on tiny models: what the run writes, the teacher's logits
computed once and cached, unlabelled texts in the transfer set, the KD term really steering the
student, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import transferkit.distillation as distillation
import transferkit.features as features
from conftest import make_sentences, one_torch_thread, write_csv
from transferkit.cli.main import main

REPO = Path(__file__).resolve().parents[2]
MODELS = ("teacher", "student_plain", "student_distilled")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[Path, Path]:
    """(data, teacher artifact): a tiny-bert fitted with seed 0 on 120 labelled sentences."""
    root = tmp_path_factory.mktemp("teacher")
    data = write_csv(root / "reviews.csv", make_sentences(120))
    assert main(["fit", "--data", str(data), "--model", "tiny-bert", "--epochs", "2", "--lr", "1e-3",
                 "--out", str(root / "run"), "--quiet"]) == 0
    return data, root / "run" / "model"


def distill_argv(teacher_dir: Path, data: Path, out: Path, *extra: object, student: str = "tiny-bert") -> list[str]:
    """A quick distill command line; `extra` flags come last, so they override the defaults here."""
    return ["distill", "--teacher", str(teacher_dir), "--student", student, "--data", str(data),
            "--epochs", "2", "--out", str(out), "--quiet", *map(str, extra)]


@pytest.fixture(scope="module")
def run(teacher, tmp_path_factory) -> Path:
    data, teacher_dir = teacher
    root = tmp_path_factory.mktemp("distill")
    unlabelled = root / "unlabelled.txt"
    unlabelled.write_text("\n".join(text for text, _ in make_sentences(30, seed=7)) + "\n", encoding="utf-8")
    assert main(distill_argv(teacher_dir, data, root / "run", "--unlabelled", unlabelled, "--temperature", "3",
                             "--alpha", "0.7")) == 0
    return root / "run"


def test_metrics_json_has_the_three_models_with_accuracy_and_macro_f1(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    for name in MODELS:
        entry = metrics[name]
        for key in ("accuracy", "macro_f1"):
            assert isinstance(entry[key], float) and 0.0 <= entry[key] <= 1.0, (name, key)
        low, high = entry["accuracy_ci95"]
        assert low <= entry["accuracy"] <= high
        assert isinstance(entry["parameters"], int) and entry["parameters"] > 0
        assert entry["latency"]["ms_per_example_batch1"] > 0 and entry["latency"]["examples_per_s_batch32"] > 0
    for name in MODELS[1:]:
        assert 0.0 <= metrics[name]["agreement_with_teacher"] <= 1.0
        assert metrics[name]["vs_teacher"]["mean"] == pytest.approx(metrics[name]["accuracy"] - metrics["teacher"]["accuracy"])
    delta = metrics["delta_accuracy"]
    assert delta["mean"] == pytest.approx(metrics["student_distilled"]["accuracy"] - metrics["student_plain"]["accuracy"])
    assert delta["ci95"][0] <= delta["mean"] <= delta["ci95"][1]
    assert metrics["verdict"].startswith("Distillation")
    settings = metrics["distillation"]
    assert (settings["temperature"], settings["alpha"], settings["n_unlabelled"]) == (3.0, 0.7, 30)
    split = json.loads((run / "split.json").read_text())
    assert metrics["n_test"] == len(split["test"]) == metrics["teacher"]["n"] == metrics["student_distilled"]["n"]


def test_run_writes_report_artifact_and_config(run: Path, teacher) -> None:
    _, teacher_dir = teacher
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "<table>" in html and "distillation.png" in html
    assert (run / "distillation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "student with distillation" in (run / "report.md").read_text(encoding="utf-8")
    meta = json.loads((run / "model" / "transferkit.json").read_text())
    assert meta["strategy"] == "distill:temperature=3.0,alpha=0.7,inner=full"
    assert meta["distillation"]["teacher"] == str(teacher_dir.resolve())
    assert meta["distillation"]["teacher_sha256"] == distillation.artifact_digest(teacher_dir)
    assert (run / "model" / "split.json").read_text() == (run / "split.json").read_text()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "tiny-bert" and config["distill"]["alpha"] == 0.7
    assert (run / "history_student_plain.csv").is_file() and (run / "history_student_distilled.csv").is_file()
    assert not (run / "checkpoint").exists()
    # The distilled student is an ordinary artifact: it loads and predicts like the metrics say.
    import transferkit

    predictor = transferkit.load(run / "model")
    assert predictor.label_names == ["neg", "pos"] and len(predictor.predict(["great fun"])) == 1


def test_teacher_logits_are_computed_once_and_cached(teacher, tmp_path, monkeypatch) -> None:
    data, teacher_dir = teacher
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))  # an empty cache
    calls: list[tuple[object, int]] = []
    real = features.backbone_features

    def spy(backbone, items, batch_size=64):
        calls.append((backbone, len(items)))
        return real(backbone, items, batch_size)

    monkeypatch.setattr(features, "backbone_features", spy)
    unlabelled = write_csv(tmp_path / "u.csv", make_sentences(10, seed=5), header=("body", "stars"))
    assert main(distill_argv(teacher_dir, data, tmp_path / "a", "--unlabelled", unlabelled, "--unlabelled-column", "body",
                             "--epochs", "3")) == 0
    split = json.loads((tmp_path / "a" / "split.json").read_text())
    # One pass over the transfer set (labelled, then unlabelled) and one over the test split, for 3 epochs.
    assert [n for _, n in calls] == [len(split["train"]), 10, len(split["test"])]
    assert all(type(b).__name__ == type(calls[0][0]).__name__ for b, _ in calls)
    calls.clear()
    assert main(distill_argv(teacher_dir, data, tmp_path / "b", "--unlabelled", unlabelled, "--unlabelled-column",
                             "body", "--alpha", "0.2")) == 0
    assert calls == []  # a second run with the same teacher and texts reads the cache


def test_a_linear_probe_teacher_reuses_the_features_its_own_fit_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERKIT_HOME", str(tmp_path / "home"))
    data = write_csv(tmp_path / "d.csv", make_sentences(90))
    assert main(["fit", "--data", str(data), "--model", "tiny-bert", "--strategy", "linear-probe", "--epochs", "1",
                 "--out", str(tmp_path / "t"), "--quiet"]) == 0
    calls = []
    real = features.backbone_features
    monkeypatch.setattr(features, "backbone_features", lambda b, items, bs=64: calls.append(len(items)) or real(b, items, bs))
    (tmp_path / "u.txt").write_text("one new text\nand a second one\n", encoding="utf-8")
    assert main(distill_argv(tmp_path / "t" / "model", data, tmp_path / "run", "--unlabelled", tmp_path / "u.txt")) == 0
    assert calls == [2]  # only the unlabelled texts are new to the teacher


def test_unlabelled_texts_join_the_distilled_students_transfer_set_only(teacher, tmp_path, monkeypatch) -> None:
    data, teacher_dir = teacher
    seen = []
    real = distillation.train_model

    def spy(cfg, task_data, strategy, backbone, frozen, log, **kwargs):
        seen.append((task_data.train, kwargs.get("extras")))
        return real(cfg, task_data, strategy, backbone, frozen, log, **kwargs)

    monkeypatch.setattr(distillation, "train_model", spy)
    split_test = json.loads((teacher_dir / "split.json").read_text())["test"]
    rows = {str(i + 2): text for i, (text, _) in enumerate(make_sentences(120))}  # CSV line numbers are the ids
    held_out = rows[split_test[0]]
    unlabelled = tmp_path / "u.txt"
    unlabelled.write_text(f"a brand new text\n\nanother unseen one\n{held_out}\n", encoding="utf-8")
    assert main(distill_argv(teacher_dir, data, tmp_path / "run", "--unlabelled", unlabelled)) == 0
    (plain_train, plain_extras), (distilled_train, distilled_extras) = seen
    assert plain_extras is None and -100 not in plain_train.targets
    assert distilled_train.items == [*plain_train.items, "a brand new text", "another unseen one"]
    assert distilled_train.targets[-2:].tolist() == [-100, -100]
    assert distilled_extras["teacher_logits"].shape == (len(plain_train) + 2, 2)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["distillation"]["n_unlabelled"] == 2
    assert any("dropped" in note for note in metrics["notes"])


def test_pure_distillation_follows_the_teacher_not_the_labels(tmp_path) -> None:
    """α = 1 ignores the training labels: with flipped training labels (true validation and test
    labels), the distilled student still learns the teacher's rule; the plain student cannot."""
    rows = make_sentences(300)
    flip = {"pos": "neg", "neg": "pos"}
    write_csv(tmp_path / "teacher.csv", rows[:200])
    write_csv(tmp_path / "train.csv", [(text, flip[label]) for text, label in rows[:200]])
    write_csv(tmp_path / "val.csv", rows[200:250])
    write_csv(tmp_path / "test.csv", rows[250:])
    fast = ["--epochs", "6", "--lr", "2e-3", "--head-lr", "1e-2", "--patience", "0"]
    assert main(["fit", "--data", str(tmp_path / "teacher.csv"), "--model", "tiny-bert", *fast, "--skip-before",
                 "--out", str(tmp_path / "t"), "--quiet"]) == 0
    assert main(["distill", "--teacher", str(tmp_path / "t" / "model"), "--student", "tiny-bert", "--alpha", "1",
                 "--temperature", "1", *fast, "--out", str(tmp_path / "run"), "--quiet",
                 *[f"--{name}={tmp_path / name}.csv" for name in ("train", "val", "test")]]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["teacher"]["accuracy"] > 0.7
    plain, distilled = metrics["student_plain"], metrics["student_distilled"]
    assert distilled["agreement_with_teacher"] > 0.75
    assert distilled["agreement_with_teacher"] > plain["agreement_with_teacher"] + 0.2
    assert distilled["accuracy"] > plain["accuracy"]


# --- bad input ---------------------------------------------------------------------------------


def assert_one_line_error(code: int, stderr: str, out: Path, *mentions: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("transferkit: error:"), (code, lines)
    for needle in mentions:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists(), f"{out} was written"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_a_teacher_that_is_not_an_artifact_fails_in_one_line_as_a_process(tmp_path) -> None:
    data = write_csv(tmp_path / "d.csv", make_sentences(60))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "weights.bin").write_bytes(b"\0" * 16)
    env = {"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "transferkit.cli.main",
                             *distill_argv(tmp_path / "plain", data, tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=240)
    assert_one_line_error(result.returncode, result.stderr, tmp_path / "out", str(tmp_path / "plain"),
                          "not a transferkit artifact")


def bad_cases(data: Path, teacher_dir: Path, d: Path) -> dict[str, tuple[Any, list[str]]]:
    three = [*make_sentences(60), *[(f"meh the plot {i}", "meh") for i in range(12)]]
    write_csv(d / "three.csv", three)
    numeric = write_csv(d / "numeric.csv", [(text, str(i % 5)) for i, (text, _) in enumerate(make_sentences(40))])

    def onnx_teacher() -> Path:
        from transferkit.export.exporter import export_model

        return export_model(teacher_dir, "onnx", d / "onnx-teacher", quiet=True).directory

    def regression_teacher() -> Path:
        assert main(["fit", "--data", str(numeric), "--task", "regression", "--model", "tiny-bert", "--epochs", "1",
                     "--out", str(d / "regression"), "--quiet", "--skip-before"]) == 0
        return d / "regression" / "model"

    return {
        "regression teacher": (lambda: distill_argv(regression_teacher(), numeric, d / "out", "--task", "regression"),
                               ["classification teacher", "regression"]),
        "onnx teacher": (lambda: distill_argv(onnx_teacher(), data, d / "out"), ["ONNX export", str(teacher_dir)]),
        "label set differs": (distill_argv(teacher_dir, d / "three.csv", d / "out"), ["'meh'", "label sets"]),
        "missing teacher": (distill_argv(d / "nowhere", data, d / "out"), [str(d / "nowhere")]),
        "teacher saw the test split": (distill_argv(teacher_dir, data, d / "out", "--seed", "1"),
                                       ["test examples", "seed was 0"]),
        "alpha out of range": (distill_argv(teacher_dir, data, d / "out", "--alpha", "1.5"), ["alpha"]),
        "nested distill": (distill_argv(teacher_dir, data, d / "out", "--strategy", "distill"), ["itself"]),
        "missing unlabelled file": (distill_argv(teacher_dir, data, d / "out", "--unlabelled", d / "none.txt"),
                                    ["none.txt"]),
        "unknown unlabelled column": (distill_argv(teacher_dir, data, d / "out", "--unlabelled", data,
                                                   "--unlabelled-column", "body"), ["'body'"]),
        "unknown student": (distill_argv(teacher_dir, data, d / "out", student="no-such-model"), ["'no-such-model'"]),
    }


CASES = ["regression teacher", "onnx teacher", "label set differs", "missing teacher", "teacher saw the test split", "alpha out of range", "nested distill",
         "missing unlabelled file", "unknown unlabelled column", "unknown student"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_fails_with_one_clear_line_and_writes_nothing(teacher, tmp_path, capsys, name) -> None:
    data, teacher_dir = teacher
    argv, mentions = bad_cases(data, teacher_dir, tmp_path)[name]
    if callable(argv):  # a case that first makes its own teacher
        argv = argv()
        capsys.readouterr()
    code = main(argv)
    assert_one_line_error(code, capsys.readouterr().err, tmp_path / "out", *mentions)


def test_an_existing_run_is_not_replaced(run: Path, teacher, capsys) -> None:
    data, teacher_dir = teacher
    before = (run / "metrics.json").stat().st_mtime_ns
    assert main(distill_argv(teacher_dir, data, run)) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "metrics.json").stat().st_mtime_ns == before
