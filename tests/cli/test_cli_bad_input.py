"""Bad input through the real CLI: one clear line on stderr, exit status 2, no traceback, and
nothing written (no run directory, no temporary leftovers, an existing run left untouched).

Each case is a real `python -m transferkit.cli.main` process. The processes are started together
by a module fixture (a few at a time) so the start-up cost of the 14 processes overlaps; every case
is still its own test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from conftest import make_sentences, one_torch_thread, write_csv, write_image_folder
from transferkit.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_cli(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transferkit.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=cli_env(), timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `directory` with its size and mtime (ns)."""
    return {str(p.relative_to(directory)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


@dataclass
class Case:
    argv: list[str]
    mentions: list[str]                 # what the one error line must name
    out: Path | None = None             # --out of a fit: must not be created
    untouched: Path | None = None       # an existing directory that must not change
    no_file: Path | None = None         # an output file that must not be created
    before: dict = field(default_factory=dict)


def fit_argv(root: Path, *extra: object, model: str = "tiny-bert") -> list[str]:
    return ["fit", *map(str, extra), "--model", model, "--strategy", "full", "--epochs", "1",
            "--out", str(root / "out"), "--quiet"]


def make_cases(good_csv: Path, run: Path) -> dict[str, Callable[[Path], Case]]:
    """Case builders: each gets its own empty directory and writes what its input needs."""
    rows = make_sentences(60, seed=3)

    def fit_case(d: Path, *extra: object, mentions: list[str], model: str = "tiny-bert") -> Case:
        return Case(fit_argv(d, *extra, model=model), mentions, out=d / "out")

    def missing_file(d):
        return fit_case(d, "--data", d / "nowhere.csv", mentions=["nowhere.csv"])

    def unknown_text_column(d):
        return fit_case(d, "--data", good_csv, "--text-column", "body", mentions=["'body'", good_csv.name, "--text-column"])

    def unknown_label_column(d):
        return fit_case(d, "--data", good_csv, "--label-column", "stars", mentions=["'stars'", good_csv.name])

    def empty_file(d):
        (d / "empty.csv").write_bytes(b"")
        return fit_case(d, "--data", d / "empty.csv", mentions=["empty.csv", "empty"])

    def header_only_file(d):
        (d / "header.csv").write_text("text,label\n", encoding="utf-8")
        return fit_case(d, "--data", d / "header.csv", mentions=["header.csv"])

    def empty_test_split(d):
        write_csv(d / "train.csv", rows)
        (d / "test.csv").write_text("text,label\n\n", encoding="utf-8")
        return fit_case(d, "--train", d / "train.csv", "--test", d / "test.csv", mentions=["test.csv"])

    def single_class(d):
        write_csv(d / "pos.csv", [(text, "pos") for text, _ in rows])
        return fit_case(d, "--data", d / "pos.csv", mentions=["pos.csv", "'pos'"])

    def unseen_test_label(d):
        write_csv(d / "train.csv", rows)
        write_csv(d / "test.csv", rows[:5] + [("the plot was fine", "meh")])
        return fit_case(d, "--train", d / "train.csv", "--test", d / "test.csv", mentions=["test.csv", "'meh'"])

    def non_utf8_row(d):
        data = good_csv.read_bytes().splitlines(keepends=True)
        data[6] = b"caf\xe9 latte was lovely,pos\n"                 # Latin-1, line 7
        (d / "latin1.csv").write_bytes(b"".join(data))
        return fit_case(d, "--data", d / "latin1.csv", mentions=["latin1.csv", "line 7", "UTF-8"])

    def corrupt_image(d):
        folder = write_image_folder(d / "images", per_class=6)
        (folder / "bright" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
        return fit_case(d, "--data", folder, mentions=["broken.png"], model="tiny-cnn")

    def truncated_image(d):
        folder = write_image_folder(d / "images", per_class=6, size=64)
        whole = (folder / "dark" / "0.png").read_bytes()
        (folder / "dark" / "cut.png").write_bytes(whole[: len(whole) // 2])
        return fit_case(d, "--data", folder, mentions=["cut.png"], model="tiny-cnn")

    def non_image_file(d):
        folder = write_image_folder(d / "images", per_class=6)
        (folder / "dark" / "notes.txt").write_text("not a picture", encoding="utf-8")
        return fit_case(d, "--data", folder, mentions=["notes.txt"], model="tiny-cnn")

    def unknown_model(d):
        return fit_case(d, "--data", good_csv, mentions=["'no-such-model'"], model="no-such-model")

    def hub_id_offline(d):
        return fit_case(d, "--data", good_csv, mentions=["hf:acme/never-downloaded-model"],
                        model="hf:acme/never-downloaded-model")

    def out_holds_a_run(d):
        case = Case(["fit", "--data", str(good_csv), "--model", "tiny-bert", "--strategy", "full", "--epochs", "1",
                     "--out", str(run), "--quiet"], mentions=[str(run), "--overwrite"], untouched=run)
        case.before = snapshot(run)
        return case

    def predict_not_an_artifact(d):
        (d / "plain").mkdir()
        (d / "plain" / "weights.bin").write_bytes(b"\0" * 16)
        (d / "in.txt").write_text("hello\n", encoding="utf-8")
        return Case(["predict", "--model", str(d / "plain"), "--input", str(d / "in.txt"), "--output", str(d / "p.jsonl")],
                    mentions=[str(d / "plain"), "not a transferkit artifact"], no_file=d / "p.jsonl")

    def predict_missing_model(d):
        (d / "in.txt").write_text("hello\n", encoding="utf-8")
        return Case(["predict", "--model", str(d / "no-model"), "--input", str(d / "in.txt")], mentions=[str(d / "no-model")])

    def predict_missing_input(d):
        return Case(["predict", "--model", str(run / "model"), "--input", str(d / "absent.csv"), "--output", str(d / "p.csv")],
                    mentions=["absent.csv"], no_file=d / "p.csv")

    def predict_non_utf8_input(d):
        (d / "in.txt").write_bytes(b"good film\nbad \xff\xfe film\n")
        return Case(["predict", "--model", str(run / "model"), "--input", str(d / "in.txt")], mentions=["in.txt", "line 2"])

    def evaluate_not_an_artifact(d):
        (d / "plain").mkdir()
        return Case(["evaluate", "--model", str(d / "plain"), "--data", str(good_csv)],
                    mentions=[str(d / "plain"), "not a transferkit artifact"])

    def evaluate_unseen_label(d):
        write_csv(d / "other.csv", rows[:8] + [("so so", "meh")])
        return Case(["evaluate", "--model", str(run / "model"), "--data", str(d / "other.csv")], mentions=["other.csv", "'meh'"])

    return {name: builder for name, builder in locals().items() if callable(builder) and name != "fit_case"}


# The list, each as a real process.
CASE_NAMES = [
    "missing_file", "unknown_text_column", "empty_file", "empty_test_split", "single_class", "unseen_test_label",
    "non_utf8_row", "corrupt_image", "non_image_file", "unknown_model", "hub_id_offline", "out_holds_a_run",
    "predict_not_an_artifact", "evaluate_not_an_artifact",
]
# More of the same kinds, checked in-process through `main()` (same rules, no process start-up).
IN_PROCESS_NAMES = [
    "unknown_label_column", "header_only_file", "truncated_image", "predict_missing_model", "predict_missing_input",
    "predict_non_utf8_input", "evaluate_unseen_label",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, run): a completed tiny-bert run, made in-process."""
    root = tmp_path_factory.mktemp("finished")
    data = write_csv(root / "reviews.csv", make_sentences(120))
    assert main(["fit", "--data", str(data), "--model", "tiny-bert", "--strategy", "full", "--epochs", "1",
                 "--out", str(root / "run"), "--quiet"]) == 0
    return data, root / "run"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, finished_run) -> dict[str, tuple[Case, subprocess.CompletedProcess]]:
    good_csv, run = finished_run
    root = tmp_path_factory.mktemp("bad")
    builders = make_cases(good_csv, run)
    assert set(builders) == set(CASE_NAMES) | set(IN_PROCESS_NAMES)
    cases = {}
    for name in CASE_NAMES:
        (root / name).mkdir()
        cases[name] = builders[name](root / name)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, *case.argv) for name, case in cases.items()}
        return {name: (cases[name], future.result()) for name, future in futures.items()}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_fails_with_one_clear_line(outcomes, name: str) -> None:
    case, result = outcomes[name]
    check_failure(case, result.returncode, result.stderr)


@pytest.mark.parametrize("name", IN_PROCESS_NAMES)
def test_more_bad_input_fails_with_one_clear_line(finished_run, tmp_path: Path, capsys, name: str) -> None:
    good_csv, run = finished_run
    case = make_cases(good_csv, run)[name](tmp_path)
    code = main(case.argv)
    check_failure(case, code, capsys.readouterr().err)


def check_failure(case: Case, returncode: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert returncode == 2, (returncode, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected exactly one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("transferkit: error:"), line
    for needle in case.mentions:
        assert needle in line, f"{needle!r} not named in: {line}"
    if case.out is not None:
        assert not case.out.exists(), f"{case.out} was created"
        assert not [p for p in case.out.parent.iterdir() if p.name.startswith(f".{case.out.name}")], "temporary leftovers"
    if case.untouched is not None:
        assert snapshot(case.untouched) == case.before, "the existing run was modified"
    if case.no_file is not None:
        assert not case.no_file.exists(), f"{case.no_file} was written"


def test_overwrite_replaces_an_existing_run(finished_run, tmp_path: Path, capsys) -> None:
    data, run = finished_run
    target = tmp_path / "run"
    shutil.copytree(run, target)
    (target / "stale.txt").write_text("from the old run", encoding="utf-8")
    old_metrics = (target / "metrics.json").stat().st_mtime_ns
    argv = ["fit", "--data", str(data), "--model", "tiny-bert", "--strategy", "full", "--epochs", "2", "--out", str(target), "--quiet"]
    assert main(argv) == 2                                   # refused without --overwrite ...
    assert "already holds a run" in capsys.readouterr().err
    assert (target / "stale.txt").exists()
    assert main([*argv, "--overwrite"]) == 0                 # ... replaced with it
    assert not (target / "stale.txt").exists()
    assert (target / "metrics.json").stat().st_mtime_ns > old_metrics
    assert (target / "model" / "head.safetensors").is_file()
    assert json.loads((target / "metrics.json").read_text())["epochs_run"] == 2
