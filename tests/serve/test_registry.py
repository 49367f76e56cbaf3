"""The model registry: versions, parents, fingerprints, promotion history, and crash safety."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving import cli_env, text_artifact
from transferkit.errors import ModelError
from transferkit.registry import DB_FILE, Registry, RegistryError


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_artifact(tmp_path_factory)


def integrity(registry: Registry) -> str:
    with sqlite3.connect(registry.db_path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_register_copies_the_artifact_with_its_provenance(tmp_path: Path, artifact: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(artifact, source)
    registry = Registry(tmp_path / "models")
    version = registry.register(source)

    assert version.version == "v1" and version.parent is None
    assert version.path == registry.root / "artifacts" / "v1" and version.path.is_dir()
    assert version.source == str(source.resolve())
    meta = json.loads((source / "transferkit.json").read_text())
    assert version.metrics == meta["metrics"]
    expected = hashlib.sha256(meta["data"]["origin"].encode() + b"\0" + (source / "split.json").read_bytes())
    assert version.data_fingerprint == expected.hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", version.created_at)

    shutil.rmtree(source)  # the registry's copy does not depend on the original
    import transferkit

    assert len(transferkit.load(version.path).predict(["good fun"])) == 1


def test_versions_parents_and_fingerprints(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    first = registry.register(artifact.parent)  # a run directory holding model/ is accepted too
    second = registry.register(artifact, parent="v1", data_fingerprint="new-batch-1")
    assert [v.version for v in registry.versions()] == ["v1", "v2"]
    assert second.parent == "v1" and second.data_fingerprint == "new-batch-1"
    assert registry.get("v1") == first

    with pytest.raises(RegistryError, match="no such version"):
        registry.register(artifact, parent="v7")
    with pytest.raises(RegistryError, match="not a version id"):
        registry.register(artifact, parent="../v1")
    with pytest.raises(ModelError, match="not a transferkit artifact"):
        registry.register(tmp_path)
    assert len(registry.versions()) == 2


def test_a_fingerprint_declared_by_the_artifact_is_used(tmp_path: Path, artifact: Path) -> None:
    updated = tmp_path / "updated"
    shutil.copytree(artifact, updated)
    meta = json.loads((updated / "transferkit.json").read_text())
    meta["data"]["fingerprint"] = "abc123"
    (updated / "transferkit.json").write_text(json.dumps(meta))
    assert Registry(tmp_path / "models").register(updated).data_fingerprint == "abc123"


def test_promote_and_rollback_walk_the_history(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    for _ in range(3):
        registry.register(artifact)
    assert registry.promoted() is None
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()

    for version in ("v1", "v2", "v3"):
        registry.promote(version)
    registry.promote("v3")  # already promoted: no new history entry
    assert registry.promoted().version == "v3"
    assert registry.rollback().version == "v2"
    assert registry.promoted().version == "v2"
    assert registry.rollback().version == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    registry.promote("v3")
    assert registry.rollback().version == "v1"

    history = registry.history()
    assert [h["version"] for h in history] == ["v1", "v2", "v3", "v3"]
    assert [h["rolled_back_at"] is not None for h in history] == [False, True, True, True]
    for bad in ("v9", "latest", "../v1", "/etc/passwd"):
        with pytest.raises(RegistryError):
            registry.promote(bad)
    assert registry.promoted().version == "v1"


def test_reading_a_missing_registry_creates_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "nowhere")
    assert registry.versions() == [] and registry.promoted() is None and registry.history() == []
    with pytest.raises(RegistryError, match="no such version"):
        registry.get("v1")
    assert not (tmp_path / "nowhere").exists()


def test_a_file_that_is_not_a_registry_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(RegistryError, match="not a database"):
        Registry(tmp_path).versions()


def test_a_folder_left_by_a_killed_register_is_replaced(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    orphan = registry.root / "artifacts" / "v1"
    orphan.mkdir(parents=True)
    (orphan / "half-copied").write_text("x")
    version = registry.register(artifact)
    assert version.version == "v1"
    assert not (version.path / "half-copied").exists() and (version.path / "transferkit.json").is_file()


def _register_and_promote(root: str, artifact: str, count: int) -> list[str]:
    registry = Registry(root)
    made = []
    for _ in range(count):
        version = registry.register(artifact).version
        registry.promote(version)
        made.append(version)
    return made


def test_concurrent_writers_do_not_corrupt_the_registry(tmp_path: Path, artifact: Path) -> None:
    root = tmp_path / "models"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        made = pool.starmap(_register_and_promote, [(str(root), str(artifact), 3)] * 4)
    registry = Registry(root)
    names = sorted(v for chunk in made for v in chunk)
    assert names == sorted(f"v{i}" for i in range(1, 13))
    assert [v.version for v in registry.versions()] == [f"v{i}" for i in range(1, 13)]
    assert all((v.path / "transferkit.json").is_file() for v in registry.versions())
    assert len(registry.history()) == 12 and registry.promoted() is not None
    assert integrity(registry) == "ok"
    assert not list((root / "artifacts").glob(".staging-*"))


FLIPPER = """
import sys
from transferkit.registry import Registry
registry = Registry(sys.argv[1])
print("ready", flush=True)
while True:
    registry.promote("v2")
    registry.promote("v1")
    registry.rollback()
"""


def test_a_writer_killed_mid_transaction_leaves_the_registry_intact(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.register(artifact)
    registry.register(artifact, parent="v1")
    registry.promote("v1")
    before = registry.versions()
    writer = subprocess.Popen([sys.executable, "-c", FLIPPER, str(registry.root)], stdout=subprocess.PIPE,
                              env=cli_env())
    try:
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(1.5)  # hundreds of transactions; the kill lands in or between one of them
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert integrity(registry) == "ok"
    assert registry.versions() == before
    assert registry.promoted().version in {"v1", "v2"}
    assert len(registry.history()) > 10
    registry.promote("v1")  # still writable
    assert registry.promoted().version == "v1"


def _not_promotable_copy(tmp_path: Path, artifact: Path) -> Path:
    """The artifact as `transferkit update` marks one that forgot too much."""
    copy = tmp_path / "forgetful"
    shutil.copytree(artifact, copy)
    meta = json.loads((copy / "transferkit.json").read_text())
    meta["metrics"] = {"backward_transfer": -0.05, "max_forgetting": 0.02, "promotable": False}
    (copy / "transferkit.json").write_text(json.dumps(meta))
    return copy


def test_a_version_marked_not_promotable_is_promoted_only_when_forced(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.register(artifact)
    registry.promote("v1")
    registry.register(_not_promotable_copy(tmp_path, artifact), parent="v1")
    message = "v2 is not promotable: backward transfer -0.0500 is worse than --max-forgetting 0.0200; pass --force"
    with pytest.raises(RegistryError, match=re.escape(message)):
        registry.promote("v2")
    assert registry.promoted().version == "v1" and len(registry.history()) == 1
    assert registry.promote("v2", force=True).version == "v2"
    assert registry.promoted().version == "v2"


def test_next_version_peeks_without_creating_anything(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    assert registry.next_version() == "v1" and not registry.root.exists()
    registry.register(artifact)
    assert registry.next_version() == "v2"
    assert [v.version for v in registry.versions()] == ["v1"]


def test_prepare_stamps_the_assigned_id_inside_the_transaction(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.register(artifact)
    seen = []

    def stamp(staging: Path, version: str) -> None:
        with sqlite3.connect(registry.db_path) as other:  # not committed yet: other connections see no row
            seen.append(other.execute("SELECT COUNT(*) FROM versions WHERE version = ?", (version,)).fetchone()[0])
        (staging / "stamp.txt").write_text(version)

    version = registry.register(artifact, prepare=stamp)
    assert version.version == "v2" and seen == [0]
    assert (version.path / "stamp.txt").read_text() == "v2"
    assert not (Path(artifact) / "stamp.txt").exists()  # only the registry's copy is stamped


def test_a_failing_prepare_registers_nothing(tmp_path: Path, artifact: Path) -> None:
    registry = Registry(tmp_path / "models")
    registry.register(artifact)

    def fail(staging: Path, version: str) -> None:
        raise ModelError(f"cannot stamp {version}")

    with pytest.raises(ModelError, match="cannot stamp v2"):
        registry.register(artifact, prepare=fail)
    assert [v.version for v in registry.versions()] == ["v1"]
    assert sorted(p.name for p in (registry.root / "artifacts").iterdir()) == ["v1"]
    assert integrity(registry) == "ok"
