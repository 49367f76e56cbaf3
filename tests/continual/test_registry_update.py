"""`transferkit update --registry`: versions registered as children of the promoted one, promoted
only within --max-forgetting, the registry's own numbering, the ledger in the registry folder,
and a kill -9 mid-training that leaves the registry as it was."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import transferkit
from conftest import make_sentences, one_torch_thread, write_csv
from transferkit.cli.main import main
from transferkit.continual.ledger import Ledger
from transferkit.continual.registered import registry_labels
from transferkit.registry import Registry

SRC = Path(__file__).resolve().parents[2] / "src"
WORDS = {"pos": "good great fine", "neg": "bad awful poor"}
# Enough to learn batch1 (and, on flipped labels, to unlearn it); FROZEN changes nothing.
LEARN = ["--epochs", "4", "--lr", "1e-3", "--head-lr", "1e-2", "--batch-size", "8", "--quiet"]
FROZEN = ["--epochs", "1", "--lr", "1e-9", "--head-lr", "1e-9", "--quiet"]


def _write(path: Path, n: int = 90, seed: int = 0, flip: bool = False) -> Path:
    """Alternating pos/neg texts; `flip` swaps every label (same texts, opposite answers)."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(n):
            label = ("pos", "neg")[i % 2]
            text = f"the {rng.choice(WORDS[label].split())} film number {rng.randint(0, 99)}"
            writer.writerow([text, {"pos": "neg", "neg": "pos"}[label] if flip else label])
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-bert artifact that has really learned batch1.csv."""
    root = tmp_path_factory.mktemp("registry-update")
    data = _write(root / "batch1.csv")
    result = transferkit.fit(data=str(data), model="tiny-bert", epochs=4, lr=1e-3, head_lr=1e-2, batch_size=8,
                             skip_before=True, out=str(root / "v1"), quiet=True)
    return result.model_dir


def _registry(tmp_path: Path, artifact: Path, promote: bool = True) -> Registry:
    registry = Registry(tmp_path / "models")
    registry.register(artifact)
    if promote:
        registry.promote("v1")
    return registry


def _update(registry: Registry, data: Path, out: Path, *flags: str) -> int:
    return main(["update", "--registry", str(registry.root), "--data", str(data), "--out", str(out),
                 "--method", "naive", *flags])


def _integrity(registry: Registry) -> str:
    with sqlite3.connect(registry.db_path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_an_update_within_the_limit_is_registered_as_a_child_and_promoted(tmp_path, v1, capsys):
    registry = _registry(tmp_path, v1)
    out = tmp_path / "run"
    assert _update(registry, _write(tmp_path / "b2.csv", seed=1), out, *FROZEN) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("v2 registered and promoted: backward transfer")

    v2 = registry.get("v2")
    assert v2.parent == "v1" and registry.promoted().version == "v2"
    meta = json.loads((v2.path / "transferkit.json").read_text())
    assert (meta["version"], meta["parent"]) == ("v2", "v1")
    assert v2.data_fingerprint == meta["data"]["fingerprint"] != registry.get("v1").data_fingerprint
    assert meta["data"]["parent_fingerprint"] == registry.get("v1").data_fingerprint
    assert v2.metrics["promotable"] is True and set(v2.metrics["accuracy_by_batch"]) == {"batch1", "b2"}

    ledger = json.loads((registry.root / "ledger.json").read_text())
    assert ledger["versions"] == ["v1", "v2"] and ledger["batches"] == ["batch1", "b2"]
    assert (ledger["latest"], ledger["promoted"]) == ("v2", "v2")
    assert ledger["backward_transfer"]["v2"] == 0.0  # frozen weights: nothing forgotten
    assert ledger["backward_transfer"]["v2"] == v2.metrics["backward_transfer"]
    assert set(ledger["accuracy"]["v2"]) == {"batch1", "b2"}
    assert json.loads((v2.path / "ledger.json").read_text())["versions"] == ["v1", "v2"]
    report = (out / "report.md").read_text()
    assert "registered as: v2" in report and "| v2 |" in report and "**v2 registered and promoted" in report


def test_an_update_that_forgets_is_registered_but_not_promoted(tmp_path, v1, capsys):
    registry = _registry(tmp_path, v1)
    flipped = _write(tmp_path / "flipped.csv", flip=True)
    assert _update(registry, flipped, tmp_path / "run", *LEARN) == 0
    captured = capsys.readouterr()
    assert "v2 registered but NOT promoted: backward transfer -" in captured.out.strip().splitlines()[-1]
    assert "transferkit: warning: v2 registered but NOT promoted" in captured.err
    assert "is worse than --max-forgetting 0.0200" in captured.err

    v2 = registry.get("v2")
    ledger = json.loads((registry.root / "ledger.json").read_text())
    assert ledger["accuracy"]["v1"]["batch1"] >= 0.8  # v1 had learned batch1 ...
    assert v2.metrics["backward_transfer"] < -0.3  # ... and v2, taught the opposite, forgot it
    assert v2.parent == "v1" and v2.metrics["promotable"] is False
    assert registry.promoted().version == "v1" and (ledger["latest"], ledger["promoted"]) == ("v2", "v1")

    assert main(["promote", "--registry", str(registry.root), "v2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("transferkit: error: v2 is not promotable: backward transfer -")
    assert "pass --force" in err[0] and registry.promoted().version == "v1"
    assert main(["versions", "--registry", str(registry.root)]) == 0
    assert any(line.startswith("x v2 ") for line in capsys.readouterr().out.splitlines())
    assert main(["promote", "--registry", str(registry.root), "v2", "--force"]) == 0
    assert registry.promoted().version == "v2"

    # --require-promotion turns the refusal into exit status 1; --from picks the starting version.
    assert _update(registry, flipped, tmp_path / "again", "--from", "v1", "--require-promotion", *LEARN) == 1
    assert registry.get("v3").parent == "v1" and registry.promoted().version == "v2"


def test_the_registry_assigns_the_version_id(tmp_path, v1, monkeypatch):
    registry = Registry(tmp_path / "models")
    registry.register(v1)
    registry.register(v1, parent="v1")  # v2 exists: a ledger-derived id for v1's child would clash with it
    registry.promote("v1")
    # A stale peek, as if another process registered between the update's start and its end.
    monkeypatch.setattr(Registry, "next_version", lambda self: "v2")
    out = tmp_path / "run"
    assert _update(registry, _write(tmp_path / "b2.csv", seed=1), out, *FROZEN) == 0
    monkeypatch.undo()

    v3 = registry.get("v3")
    assert v3.parent == "v1" and registry.promoted().version == "v3"
    for artifact in (v3.path, out / "model"):
        assert json.loads((artifact / "transferkit.json").read_text())["version"] == "v3"
        assert json.loads((artifact / "ledger.json").read_text())["versions"] == ["v1", "v3"]
        assert (artifact / "README.md").read_text().startswith("# v3 of tiny-bert (updated from v1")
    assert json.loads((registry.get("v2").path / "transferkit.json").read_text()).get("version") is None

    # The next update starts from the promoted v3 and extends its lineage, history carried over.
    assert _update(registry, _write(tmp_path / "b3.csv", seed=2), tmp_path / "run2", *FROZEN) == 0
    ledger = json.loads((registry.root / "ledger.json").read_text())
    assert registry.get("v4").parent == "v3" and ledger["versions"] == ["v1", "v3", "v4"]
    assert ledger["batches"] == ["batch1", "b2", "b3"]
    assert ledger["accuracy"]["v3"] == json.loads((v3.path / "ledger.json").read_text())["accuracy"]["v3"]


def test_ledger_rows_follow_the_registered_lineage(tmp_path, v1):
    registry = Registry(tmp_path / "models")
    for label, parent in (("v1", None), ("v2", "v1")):  # made by `update --model`, then registered by hand
        copy = tmp_path / f"made-{label}"
        shutil.copytree(v1, copy)
        meta = json.loads((copy / "transferkit.json").read_text())
        (copy / "transferkit.json").write_text(json.dumps({**meta, "version": label}))
        registry.register(copy, parent=parent)
    ledger, seen = Ledger(), {}
    for label in ("v0", "v1", "v2"):  # v0 was never registered
        seen[f"batch-{label}"] = 0.5
        ledger.add_version(label, f"batch-{label}", seen, None)
    registry.register(v1)  # v3: unrelated
    # Starting from registry v2 (ledger row v2), its parent v1 carries row v1; v0 has no registry id.
    assert registry_labels(registry, registry.get("v2"), ledger) == {"v2": "v2", "v1": "v1", "v0": "v0 (unregistered)"}
    # Registered under other ids: registry v3 holds an artifact whose ledger ends in v1.
    assert registry_labels(registry, registry.get("v3"), ledger) == {
        "v2": "v3", "v1": "v1 (unregistered)", "v0": "v0 (unregistered)"}


def test_a_fit_made_root_registered_late_keeps_its_registry_id_in_the_ledger(tmp_path, v1):
    registry = Registry(tmp_path / "models")
    for _ in range(3):
        registry.register(v1)  # v1..v3; v3 is the root of the lineage below (made by `fit`: no label)
    child = tmp_path / "made-v4"
    shutil.copytree(v1, child)
    meta = json.loads((child / "transferkit.json").read_text())
    (child / "transferkit.json").write_text(json.dumps({**meta, "version": "v4"}))
    registry.register(child, parent="v3")
    ledger, seen = Ledger(), {}
    for label in ("v3", "v4"):  # the rows a registered update names by registry id
        seen[f"batch-{label}"] = 0.5
        ledger.add_version(label, f"batch-{label}", seen, None)
    assert registry_labels(registry, registry.get("v4"), ledger) == {"v4": "v4", "v3": "v3"}


def test_update_needs_a_version_to_start_from(tmp_path, v1, capsys):
    data, out = _write(tmp_path / "b2.csv"), tmp_path / "run"
    empty = Registry(tmp_path / "nothing")
    assert _update(empty, data, out) == 2
    assert "no model registry here" in capsys.readouterr().err
    registry = _registry(tmp_path, v1, promote=False)
    assert _update(registry, data, out) == 2
    assert "nothing is promoted; promote a version or pass --from VERSION" in capsys.readouterr().err
    assert _update(registry, data, out, "--from", "v9") == 2
    assert "v9: no such version" in capsys.readouterr().err
    assert not out.exists() and not empty.root.exists() and [v.version for v in registry.versions()] == ["v1"]


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", TRANSFERKIT_THREADS="1")
    return env


def _kill_once_training(command: list[str], log: Path, marker: str = "training on") -> None:
    """Run `command`, SIGKILL it a moment after `marker` appears in its log (training has begun)."""
    with log.open("w") as handle:
        victim = subprocess.Popen(command, env=_cli_env(), stdin=subprocess.DEVNULL, stdout=handle,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while marker not in log.read_text():
                assert victim.poll() is None, f"update ended before training: {log.read_text()}"
                assert time.monotonic() < deadline, "training did not start within 300 s"
                time.sleep(0.05)
            time.sleep(1.0)
            assert victim.poll() is None, "update finished before it could be killed; give it more data"
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=30) == -signal.SIGKILL
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait()


def test_a_killed_update_leaves_the_registry_as_it_was(tmp_path, v1):
    registry = _registry(tmp_path, v1)
    before = (registry.versions(), registry.history())
    big = write_csv(tmp_path / "big.csv", make_sentences(3000, seed=5))  # ~1000 steps per epoch at batch size 2
    out = tmp_path / "killed"
    _kill_once_training([sys.executable, "-m", "transferkit.cli.main", "update", "--registry", str(registry.root),
                         "--data", str(big), "--out", str(out), "--method", "replay", "--replay-size", "20",
                         "--epochs", "5", "--batch-size", "2", "--patience", "0"], tmp_path / "update.log")

    assert _integrity(registry) == "ok"
    assert (registry.versions(), registry.history()) == before and registry.promoted().version == "v1"
    assert sorted(p.name for p in (registry.root / "artifacts").iterdir()) == ["v1"]  # no v2, no staging folder
    assert {p.name for p in registry.root.iterdir()} - {"registry.sqlite-wal", "registry.sqlite-shm"} == {
        "registry.sqlite", "artifacts"}  # no ledger.json either
    assert not list(out.iterdir())  # nothing half-written in the run directory

    # A later update, into the same run directory, is not confused by anything the killed one left.
    assert _update(registry, _write(tmp_path / "b2.csv", seed=1), out, *FROZEN) == 0
    assert registry.get("v2").parent == "v1" and registry.promoted().version == "v2"
    assert _integrity(registry) == "ok"
