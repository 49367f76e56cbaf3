"""The model registry: numbered, immutable versions of artifacts, and which one is promoted.

    REGISTRY/
      registry.sqlite      versions(id, version, parent, path, source, data_fingerprint,
                           metrics_json, created_at) and the promotion history
      artifacts/v1/ ...    a copy of each registered artifact, never modified afterwards

Artifacts are *copied* in, not referenced by path: a version id then always means the same
weights, even after the run directory is deleted or re-fitted with --overwrite, so a rollback
really restores what was served before, and the registry folder can be moved as a whole
(paths are stored relative to it).

Crash safety. SQLite in WAL mode with synchronous=FULL: every change is one transaction, so a
process killed at any instant leaves the database as before or after that change, never in
between. An artifact is copied into a staging folder first and renamed to `artifacts/vN` inside
the transaction that records vN; a kill between that rename and the commit leaves a folder that
no row references, which the next `register` replaces.

Promotions form a history: `promote` appends an entry; `rollback` marks the newest live entry
as rolled back, so the previously promoted version is current again (repeated rollbacks walk
further back). The promoted version is the newest live entry, so the pointer and its history
can never disagree.

Promotability. An artifact whose metrics say `"promotable": false` (`transferkit update` writes
that when the new version forgot more of earlier data than --max-forgetting allows) is registered
like any other, but `promote` refuses it unless forced.

The data fingerprint identifies the data a version was trained on, so a later re-fine-tune
(`parent` = the version it started from) can say what is new: by default the sha256 of the
artifact's data origin and its split.json (the exact example ids of every split), unless the
artifact declares its own `data.fingerprint`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TransferkitError
from .export.artifact import read_meta, resolve_artifact_dir

DB_FILE = "registry.sqlite"
ARTIFACTS = "artifacts"
VERSION_PATTERN = re.compile(r"^v[1-9][0-9]{0,8}$")
SCHEMA_VERSION = 1
SCHEMA = ("""
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL UNIQUE,
    parent TEXT REFERENCES versions(version),
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    created_at TEXT NOT NULL
)""", """
CREATE TABLE IF NOT EXISTS promotions (
    seq INTEGER PRIMARY KEY,
    version TEXT NOT NULL REFERENCES versions(version),
    promoted_at TEXT NOT NULL,
    rolled_back_at TEXT
)""")


class RegistryError(TransferkitError):
    """An unknown version, nothing to roll back to, or a folder that is not a registry."""


@dataclass(frozen=True)
class Version:
    """One registered artifact."""

    version: str
    parent: str | None
    path: Path
    source: str
    data_fingerprint: str
    metrics: dict[str, Any]
    created_at: str

    def summary(self) -> dict[str, Any]:
        """JSON-able description (without the server-side path)."""
        return {"version": self.version, "parent": self.parent, "data_fingerprint": self.data_fingerprint,
                "metrics": self.metrics, "created_at": self.created_at}


def default_registry_dir() -> Path:
    """$TRANSFERKIT_REGISTRY, else ./models (next to ./runs, where `fit` writes by default)."""
    return Path(os.environ.get("TRANSFERKIT_REGISTRY") or "models")


def check_version_id(version: str) -> str:
    """`version` if it is a registry version id (v1, v2, ...); RegistryError otherwise."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise RegistryError(f"{version!r} is not a version id; versions are named v1, v2, ...")
    return version


def artifact_data_fingerprint(artifact_dir: Path) -> str:
    """The artifact's own `data.fingerprint` when it declares one (`transferkit update` does), else
    the sha256 of its data origin and its split.json (both as stored in the artifact)."""
    meta = read_meta(artifact_dir)
    if meta.get("data", {}).get("fingerprint"):
        return str(meta["data"]["fingerprint"])
    digest = hashlib.sha256(str(meta.get("data", {}).get("origin", "")).encode("utf-8"))
    digest.update(b"\0")
    split = artifact_dir / "split.json"
    digest.update(split.read_bytes() if split.is_file() else b"")
    return digest.hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Registry:
    """A registry folder. Every method opens its own connection, so instances are cheap and a
    registry can be shared by processes (CLI commands, a running service)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.db_path = self.root / DB_FILE

    def exists(self) -> bool:
        return self.db_path.is_file()

    @contextlib.contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        if write:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.exists():
            raise RegistryError(f"{self.root}: no model registry here (no {DB_FILE}); "
                                "register a model with `transferkit register --model DIR`")
        connection = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA synchronous = FULL")
            if write:
                connection.execute("PRAGMA journal_mode = WAL")
                self._ensure_schema(connection)
            yield connection
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"{self.db_path}: {exc}") from None
        finally:
            connection.close()

    @staticmethod
    def _ensure_schema(connection: sqlite3.Connection) -> None:
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise RegistryError(f"registry schema {found} is newer than this transferkit; upgrade")
        if found < SCHEMA_VERSION:
            with _transaction(connection):
                for statement in SCHEMA:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def register(self, artifact_dir: str | Path, parent: str | None = None, data_fingerprint: str | None = None,
                 prepare: Callable[[Path, str], None] | None = None) -> Version:
        """Copy an artifact into the registry as the next version; returns it (not promoted).

        `prepare(staging, version)` runs inside the transaction that assigns the version id, on
        the staged copy, before it is renamed into place: a caller that writes the id into the
        artifact (`transferkit update` does) gets exactly the id the registry assigned, even when
        another process registered a version meanwhile."""
        source = resolve_artifact_dir(artifact_dir).resolve()
        read_meta(source)
        if parent is not None:
            self.get(check_version_id(parent))
        artifacts = self.root / ARTIFACTS
        artifacts.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(artifacts)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=artifacts))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            fingerprint = data_fingerprint or artifact_data_fingerprint(staging)
            metrics = read_meta(staging).get("metrics", {})
            return self._insert(staging, str(source), parent, fingerprint, metrics, prepare)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def next_version(self) -> str:
        """The id the next `register` would assign if nobody registers before it (v1 when empty)."""
        if not self.exists():
            return "v1"
        with self._connect(write=False) as connection:
            return f"v{connection.execute(_NEXT_ID).fetchone()[0]}"

    def _insert(self, staging: Path, source: str, parent: str | None, fingerprint: str,
                metrics: dict[str, Any], prepare: Callable[[Path, str], None] | None) -> Version:
        with self._connect(write=True) as connection, _transaction(connection):
            number = connection.execute(_NEXT_ID).fetchone()[0]
            version = f"v{number}"
            if prepare is not None:
                prepare(staging, version)
            final = self.root / ARTIFACTS / version
            if final.exists():  # left by a register killed between its rename and its commit
                shutil.rmtree(final)
            os.replace(staging, final)
            connection.execute(
                "INSERT INTO versions (id, version, parent, path, source, data_fingerprint, metrics_json, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (number, version, parent, f"{ARTIFACTS}/{version}", source, fingerprint,
                 json.dumps(metrics, default=str), _now()))
        return self.get(version)

    def versions(self) -> list[Version]:
        """Every registered version, oldest first (empty when nothing is registered yet)."""
        if not self.exists():
            return []
        with self._connect(write=False) as connection:
            rows = connection.execute(f"{_SELECT} ORDER BY id").fetchall()
        return [self._version(row) for row in rows]

    def get(self, version: str) -> Version:
        check_version_id(version)
        row = None
        if self.exists():
            with self._connect(write=False) as connection:
                row = connection.execute(f"{_SELECT} WHERE version = ?", (version,)).fetchone()
        if row is None:
            raise RegistryError(f"{version}: no such version in {self.root} (see `transferkit versions`)")
        return self._version(row)

    def promoted(self) -> Version | None:
        """The version being served: the newest promotion not rolled back."""
        if not self.exists():
            return None
        with self._connect(write=False) as connection:
            row = connection.execute(_LIVE_PROMOTIONS + " LIMIT 1").fetchone()
        return self.get(row[1]) if row else None

    def promote(self, version: str, force: bool = False) -> Version:
        """Make `version` the promoted one (a no-op when it already is).

        A version whose metrics say it is not promotable (it forgot too much) is refused unless
        `force`."""
        target = self.get(version)
        if not force and target.metrics.get("promotable") is False:
            raise RegistryError(f"{version} is not promotable: {not_promotable_reason(target.metrics)}; "
                                f"pass --force to promote it anyway (`transferkit promote {version} --force`)")
        with self._connect(write=True) as connection, _transaction(connection):
            current = connection.execute(_LIVE_PROMOTIONS + " LIMIT 1").fetchone()
            if current is None or current[1] != version:
                connection.execute("INSERT INTO promotions (version, promoted_at) VALUES (?, ?)", (version, _now()))
        return target

    def rollback(self) -> Version:
        """Undo the latest promotion: the previously promoted version is current again."""
        with self._connect(write=True) as connection, _transaction(connection):
            live = connection.execute(_LIVE_PROMOTIONS + " LIMIT 2").fetchall()
            if len(live) < 2:
                raise RegistryError("nothing to roll back to: fewer than two promotions in the history")
            connection.execute("UPDATE promotions SET rolled_back_at = ? WHERE seq = ?", (_now(), live[0][0]))
        return self.get(live[1][1])

    def history(self) -> list[dict[str, Any]]:
        """Every promotion, oldest first: {version, promoted_at, rolled_back_at}."""
        if not self.exists():
            return []
        with self._connect(write=False) as connection:
            rows = connection.execute("SELECT version, promoted_at, rolled_back_at FROM promotions ORDER BY seq").fetchall()
        return [{"version": v, "promoted_at": p, "rolled_back_at": r} for v, p, r in rows]

    def _version(self, row: tuple) -> Version:
        version, parent, path, source, fingerprint, metrics_json, created_at = row
        return Version(version, parent, self.root / path, source, fingerprint, json.loads(metrics_json), created_at)


def not_promotable_reason(metrics: dict[str, Any]) -> str:
    """Why a version was marked not promotable, from the metrics `transferkit update` records."""
    bwt, limit = metrics.get("backward_transfer"), metrics.get("max_forgetting")
    if isinstance(bwt, (int, float)) and isinstance(limit, (int, float)):
        return f"backward transfer {bwt:+.4f} is worse than --max-forgetting {limit:.4f}"
    return "its metrics mark it as not promotable"


_NEXT_ID = "SELECT COALESCE(MAX(id), 0) + 1 FROM versions"
_SELECT = "SELECT version, parent, path, source, data_fingerprint, metrics_json, created_at FROM versions"
_LIVE_PROMOTIONS = "SELECT seq, version FROM promotions WHERE rolled_back_at IS NULL ORDER BY seq DESC"


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take the write lock up front, so concurrent writers queue) ... COMMIT."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _remove_stale_staging(artifacts: Path, max_age_seconds: float = 3600.0) -> None:
    """Staging folders of killed `register`s (older than an hour: a live one is never touched)."""
    now = time.time()
    for leftover in artifacts.glob(".staging-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > max_age_seconds:
                shutil.rmtree(leftover, ignore_errors=True)
