"""The CLI commands end to end: fit (text and images), re-running a config.yaml, flags over YAML,
predict (every input kind, both output formats, stdin), evaluate, models and datasets.

The tiny in-repo models are random-init, so no test looks at how good a model is, only at what
the commands write and whether it is consistent.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import make_sentences, one_torch_thread, write_csv, write_image_folder
from transferkit.cli.main import main
from transferkit.config import FitConfig

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
TEXT_LABELS = {"neg", "pos"}
IMAGE_LABELS = {"bright", "dark"}


def cli_env() -> dict[str, str]:
    """The subprocess environment: the source tree importable, offline, one torch thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_cli(*args: object, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`transferkit ARGS` as a real process (the package is not pip-installed, hence -m)."""
    return subprocess.run([sys.executable, "-m", "transferkit.cli.main", *map(str, args)], input=input,
                          capture_output=True, text=True, env=cli_env(), timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def tiny_fit_args(data: Path, out: Path, model: str = "tiny-bert", epochs: int = 2) -> list[str]:
    return ["fit", "--data", str(data), "--model", model, "--strategy", "full", "--epochs", str(epochs),
            "--seed", "0", "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny-bert run on 120 labelled sentences (shared by predict/evaluate tests)."""
    root = tmp_path_factory.mktemp("text_run")
    data = write_csv(root / "reviews.csv", make_sentences(120))
    assert main(tiny_fit_args(data, root / "run")) == 0
    return root / "run"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image_run")
    folder = write_image_folder(root / "images")
    assert main(tiny_fit_args(folder, root / "run", model="tiny-cnn")) == 0
    return root / "run"


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def assert_complete_run(out: Path, n_total: int, epochs: int) -> dict:
    """Every file the issue lists, with the metrics.json keys and types it requires."""
    for name in ("config.yaml", "split.json", "history.csv", "metrics.json", "report.md", "report.html"):
        assert (out / name).is_file(), f"{name} missing from the run directory"
        assert (out / name).stat().st_size > 0, f"{name} is empty"
    pngs = sorted(out.glob("*.png"))
    assert pngs, "no PNG plots in the run directory"
    html = (out / "report.html").read_text(encoding="utf-8")
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.name in html, f"report.html does not show {png.name}"
    assert "<table" in html
    for name in ("transferkit.json", "head.safetensors", "README.md", "split.json"):
        assert (out / "model" / name).is_file(), f"model/{name} missing"
    assert not (out / "checkpoint").exists(), "the checkpoint should be removed once the artifact exists"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")], "temporary directories left behind"

    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert set(config) == {f.name for f in dataclasses.fields(FitConfig)}, "config.yaml is not fully resolved"

    split = json.loads((out / "split.json").read_text())
    ids = [set(split[name]) for name in ("train", "val", "test")]
    assert sum(len(s) for s in ids) == n_total
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]), "splits overlap"

    metrics = json.loads((out / "metrics.json").read_text())
    for which in ("before", "after"):
        for key in ("accuracy", "macro_f1"):
            value = metrics[which][key]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (which, key, value)
    delta = metrics["delta_accuracy"]
    assert isinstance(delta["mean"], float)
    low, high = delta["ci95"]
    assert isinstance(low, float) and isinstance(high, float)
    assert low <= delta["mean"] <= high
    assert delta["mean"] == pytest.approx(metrics["after"]["accuracy"] - metrics["before"]["accuracy"])
    assert isinstance(metrics["n_test"], int) and metrics["n_test"] == len(ids[2])
    assert isinstance(metrics["train_seconds"], float) and metrics["train_seconds"] > 0

    with (out / "history.csv").open(newline="") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == epochs == metrics["epochs_run"]
    assert all(0.0 <= float(row["val_accuracy"]) <= 1.0 for row in history)
    return metrics


# --- fit ---------------------------------------------------------------------------------------


def test_fit_text_csv_writes_the_whole_run_directory(text_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(tiny_fit_args(text_csv, out)) == 0
    stdout = capsys.readouterr().out
    assert f"run: {out}" in stdout and f"model: {out / 'model'}" in stdout
    assert_complete_run(out, n_total=120, epochs=2)
    meta = json.loads((out / "model" / "transferkit.json").read_text())
    assert meta["format"] == "transferkit-artifact" and meta["label_names"] == sorted(TEXT_LABELS)
    assert (out / "model" / "encoder" / "config.json").is_file()


def test_fit_image_folder_writes_the_whole_run_directory(image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(tiny_fit_args(image_folder, out, model="tiny-cnn")) == 0
    assert f"run: {out}" in capsys.readouterr().out
    metrics = assert_complete_run(out, n_total=24, epochs=2)
    assert metrics["model"] == "tiny-cnn"
    meta = json.loads((out / "model" / "transferkit.json").read_text())
    assert meta["modality"] == "image" and meta["label_names"] == sorted(IMAGE_LABELS)


def test_fit_config_yaml_reproduces_the_run(text_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert main(["fit", str(text_run / "config.yaml"), "--out", str(again)]) == 0
    first = json.loads((text_run / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert second["after"] == first["after"]
    assert second["before"] == first["before"]
    assert second["after"]["accuracy"] == first["after"]["accuracy"]
    assert (again / "split.json").read_text() == (text_run / "split.json").read_text()
    assert_same_tensors(tensors(again / "model" / "head.safetensors"), tensors(text_run / "model" / "head.safetensors"))
    assert_same_tensors(tensors(again / "model" / "encoder" / "model.safetensors"),
                        tensors(text_run / "model" / "encoder" / "model.safetensors"))
    # Everything but the output directory is the same resolved configuration.
    a = yaml.safe_load((text_run / "config.yaml").read_text())
    b = yaml.safe_load((again / "config.yaml").read_text())
    assert b.pop("out") == str(again) and a.pop("out") == str(text_run)
    assert a == b


def test_flags_override_yaml_values(text_csv: Path, tmp_path: Path) -> None:
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({
        "data": str(text_csv), "model": "tiny-bert", "strategy": "full", "epochs": 3, "lr": 1e-4,
        "batch_size": 8, "seed": 3, "bucket": True, "quiet": True, "out": str(tmp_path / "from-yaml"),
    }), encoding="utf-8")
    out = tmp_path / "from-flags"
    assert main(["fit", str(config), "--epochs", "1", "--lr", "0.0002", "--seed", "5", "--no-bucket",
                 "--out", str(out)]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["epochs"] == 1 and resolved["lr"] == 2e-4 and resolved["seed"] == 5   # flags win
    assert resolved["bucket"] is False and resolved["out"] == str(out)
    assert resolved["batch_size"] == 8 and resolved["model"] == "tiny-bert"              # YAML kept
    assert resolved["head_lr"] == FitConfig.__dataclass_fields__["head_lr"].default       # defaults filled
    assert not (tmp_path / "from-yaml").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1
    assert json.loads((out / "split.json").read_text())["seed"] == 5


# --- predict -----------------------------------------------------------------------------------

PREDICT_TEXTS = ["a superb and lovely movie", "boring, dull and terrible plot", "the actors", "great fun",
                 "awful", "it was really poor"]


def write_predict_input(kind: str, directory: Path) -> Path:
    if kind == "csv":
        # Extra columns and a quoted comma: the text column is picked by name.
        path = directory / "new.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text", "source"])
            writer.writerows([[i, t, "web"] for i, t in enumerate(PREDICT_TEXTS)])
        return path
    if kind == "jsonl":
        path = directory / "new.jsonl"
        path.write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(PREDICT_TEXTS)), encoding="utf-8")
        return path
    path = directory / "new.txt"
    path.write_text("\n".join(PREDICT_TEXTS[:3]) + "\n\n" + "\n".join(PREDICT_TEXTS[3:]) + "\n", encoding="utf-8")
    return path


def parse_predictions(text: str, fmt: str) -> list[tuple[str, str, dict[str, float]]]:
    """(id, label, probabilities) per output row, from JSONL or CSV."""
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [(r["id"], r["label"], r["probabilities"]) for r in rows]
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames[:2] == ["id", "label"]
    return [(r["id"], r["label"], {k[2:]: float(v) for k, v in r.items() if k.startswith("p_")}) for r in reader]


def check_predictions(rows, n: int, labels: set[str], tolerance: float) -> None:
    assert len(rows) == n, f"expected one output row per input, got {len(rows)} for {n}"
    assert len({r[0] for r in rows}) == n, "ids must be unique"
    for _, label, probabilities in rows:
        assert set(probabilities) == labels
        assert label in labels
        assert math.fsum(probabilities.values()) == pytest.approx(1.0, abs=tolerance)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
        assert probabilities[label] == max(probabilities.values())


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("kind", ["csv", "jsonl", "txt"])
def test_predict_from_files(text_run: Path, tmp_path: Path, capsys, kind: str, fmt: str) -> None:
    source = write_predict_input(kind, tmp_path)
    assert main(["predict", "--model", str(text_run / "model"), "--input", str(source), "--format", fmt]) == 0
    rows = parse_predictions(capsys.readouterr().out, fmt)
    check_predictions(rows, len(PREDICT_TEXTS), TEXT_LABELS, 1e-6 if fmt == "jsonl" else 1e-5)
    # The model reads its input: different texts do not all get the same probabilities.
    assert len({tuple(sorted(p.items())) for _, _, p in rows}) > 1


def test_predict_output_file_format_from_extension_and_run_dir_accepted(text_run: Path, tmp_path: Path) -> None:
    source = write_predict_input("txt", tmp_path)
    target = tmp_path / "predictions.csv"
    # A run directory is accepted in place of its model/ directory.
    assert main(["predict", "--model", str(text_run), "--input", str(source), "--output", str(target)]) == 0
    rows = parse_predictions(target.read_text(encoding="utf-8"), "csv")
    check_predictions(rows, len(PREDICT_TEXTS), TEXT_LABELS, 1e-5)
    # ids are the input's line numbers; the blank line 4 is skipped.
    assert [r[0] for r in rows] == ["1", "2", "3", "5", "6", "7"]


def test_predict_reads_stdin(text_run: Path) -> None:
    result = run_cli("predict", "--model", text_run / "model", "--input", "-", input="\n".join(PREDICT_TEXTS) + "\n")
    assert result.returncode == 0, result.stderr
    rows = parse_predictions(result.stdout, "jsonl")
    check_predictions(rows, len(PREDICT_TEXTS), TEXT_LABELS, 1e-6)
    assert "Traceback" not in result.stderr


def test_predict_images_from_a_list_of_paths(image_run: Path, tmp_path: Path, capsys) -> None:
    images = write_image_folder(tmp_path / "new-images", per_class=3, seed=5)
    paths = sorted(str(p) for p in images.rglob("*.png"))
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
    assert main(["predict", "--model", str(image_run / "model"), "--input", str(listing)]) == 0
    rows = parse_predictions(capsys.readouterr().out, "jsonl")
    check_predictions(rows, len(paths), IMAGE_LABELS, 1e-6)


# --- evaluate, models, datasets ----------------------------------------------------------------


def test_evaluate_prints_accuracy(text_run: Path, capsys) -> None:
    split = json.loads((text_run / "split.json").read_text())
    config = yaml.safe_load((text_run / "config.yaml").read_text())
    assert main(["evaluate", "--model", str(text_run / "model"), "--data", config["data"]]) == 0
    stdout = capsys.readouterr().out
    match = re.search(r"^\s*accuracy\s+([0-9.]+)\s+\(95% CI ([0-9.]+)-([0-9.]+)\)", stdout, re.M)
    assert match, stdout
    accuracy, low, high = map(float, match.groups())
    assert 0.0 <= low <= accuracy <= high <= 1.0
    # On its own data the artifact is evaluated on its saved test split only.
    assert f"n={len(split['test'])}" in stdout
    metrics = json.loads((text_run / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["after"]["accuracy"], abs=5e-5)


def test_models_lists_the_zoo_with_installed_flag(capsys) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("minilm-l6", "mpnet-base", "efficientnet-lite0", "tiny-bert", "tiny-cnn"):
        row = next((line for line in lines if line.split() and line.split()[0] == name), None)
        assert row is not None, f"{name} not listed"
        assert re.search(r"\s(yes|no)\s", row), row
    assert main(["models", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    from transferkit.zoo import ZOO

    for name in ("minilm-l6", "mpnet-base", "efficientnet-lite0"):
        assert listed[name]["installed"] is ZOO[name].is_installed()
    assert listed["tiny-bert"]["installed"] is True


def test_datasets_lists_the_builtins(capsys) -> None:
    assert main(["datasets"]) == 0
    names = re.findall(r"^(builtin:\S+)", capsys.readouterr().out, re.M)
    assert names == ["builtin:vader-movie", "builtin:vader-amazon", "builtin:vader-tweets", "builtin:vader-nyt",
                     "builtin:mnist-5k", "builtin:digits"]
