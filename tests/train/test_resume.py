"""A killed `transferkit fit` resumes with `--resume` and ends exactly where an uninterrupted run
ends; `--resume` without a checkpoint simply trains from the start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import make_sentences, one_torch_thread, write_csv
from transferkit.cli.main import main
from transferkit.config import FitConfig

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
EPOCHS = 4


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def cli_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "transferkit.cli.main", *map(str, args)]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    for name in ("head.safetensors", "encoder/model.safetensors"):
        left, right = tensors(a / "model" / name), tensors(b / "model" / name)
        assert left.keys() == right.keys()
        for key in left:
            assert torch.equal(left[key], right[key]), f"{name}: {key} differs"


def checkpoint_epoch(run: Path) -> int:
    try:
        return int(json.loads((run / "checkpoint" / "state.json").read_text())["epoch"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0  # not written yet, or being replaced right now


def examples_trained(metrics: dict) -> int:
    """Examples this process trained on, so a resumed run shows its skipped epochs."""
    return metrics["throughput"]["examples"]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    # 300 sentences at batch size 2: ~100 steps, about a second per epoch with one thread.
    data = write_csv(tmp_path / "reviews.csv", make_sentences(300, seed=11))
    args = ["fit", "--data", data, "--model", "tiny-bert", "--strategy", "full", "--epochs", EPOCHS,
            "--batch-size", 2, "--patience", 0, "--seed", 0, "--quiet"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("killed", "whole")}
    victim = subprocess.Popen(cli_command(*args, "--out", killed), env=cli_env(), stdin=subprocess.DEVNULL,
                              stdout=logs["killed"], stderr=subprocess.STDOUT)
    reference = subprocess.Popen(cli_command(*args, "--out", whole), env=cli_env(), stdin=subprocess.DEVNULL,
                                 stdout=logs["whole"], stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while checkpoint_epoch(killed) < 1:
            assert victim.poll() is None, f"fit ended before its first checkpoint: {(tmp_path / 'killed.log').read_text()}"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        assert reference.wait(timeout=300) == 0, (tmp_path / "whole.log").read_text()
    finally:
        for process in (victim, reference):
            if process.poll() is None:
                process.kill()
                process.wait()
        for handle in logs.values():
            handle.close()

    stopped_at = checkpoint_epoch(killed)
    assert 1 <= stopped_at < EPOCHS, "the run was not interrupted mid-training"
    assert not (killed / "model").exists(), "a killed run must not leave an artifact"
    assert not (killed / "metrics.json").exists()
    assert (killed / "config.yaml").is_file()

    # Only --out and --resume: the run's own config.yaml says how to continue.
    resumed = subprocess.run(cli_command("fit", "--out", killed, "--resume"), env=cli_env(), capture_output=True,
                             text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr

    after_resume = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((whole / "metrics.json").read_text())
    assert after_resume["after"]["accuracy"] == uninterrupted["after"]["accuracy"]
    assert after_resume["after"] == uninterrupted["after"]
    assert after_resume["epochs_run"] == uninterrupted["epochs_run"] == EPOCHS
    assert after_resume["best_step"] == uninterrupted["best_step"]
    assert_same_weights(killed, whole)
    assert (killed / "history.csv").read_text() == (whole / "history.csv").read_text()
    assert not (killed / "checkpoint").exists()
    # It really continued: the resumed process trained only the epochs the killed one had not finished.
    n_train = json.loads((killed / "split.json").read_text())["sizes"]["train"]
    assert examples_trained(uninterrupted) == EPOCHS * n_train
    assert examples_trained(after_resume) == (EPOCHS - stopped_at) * n_train


@pytest.mark.parametrize("existing", ["config-only", "absent"])
def test_resume_without_a_checkpoint_trains_from_scratch(text_csv: Path, tmp_path: Path, existing: str) -> None:
    flags = dict(data=str(text_csv), model="tiny-bert", strategy="full", epochs=2, seed=0, quiet=True)
    fresh = tmp_path / "fresh"
    assert main(["fit", *[f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if k != "quiet"],
                 "--quiet", "--out", str(fresh)]) == 0

    run = tmp_path / "resumed"
    if existing == "config-only":
        # A run killed before its first checkpoint: config.yaml, nothing else to continue from.
        run.mkdir()
        FitConfig(**flags, out=str(run)).save_yaml(run / "config.yaml")
        argv = ["fit", "--out", str(run), "--resume"]
    else:
        argv = ["fit", "--data", str(text_csv), "--model", "tiny-bert", "--strategy", "full", "--epochs", "2",
                "--seed", "0", "--quiet", "--out", str(run), "--resume"]
    assert main(argv) == 0

    metrics = json.loads((run / "metrics.json").read_text())
    reference = json.loads((fresh / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert metrics["after"] == reference["after"]
    assert_same_weights(run, fresh)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["epochs"] == 2 and resolved["model"] == "tiny-bert"
