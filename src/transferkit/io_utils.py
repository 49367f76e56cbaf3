"""Atomic file and directory writes: a crash never leaves a half-written artifact behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_dir(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success rename it to `final`.

    The temporary directory lives next to `final` so the rename stays on one filesystem and is
    atomic. On any exception it is removed and `final` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} already exists")
            # Two renames: between them only the previous version exists, under previous_version().
            previous = previous_version(final)
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(final, previous)
            os.replace(tmp, final)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def previous_version(final: Path) -> Path:
    """Where atomic_dir keeps the replaced directory for the instant between its two renames."""
    return final.with_name(f".{final.name}.previous")


def latest_complete(final: Path) -> Path:
    """`final`, or its previous version if a kill struck between atomic_dir's two renames."""
    final = Path(final)
    if not final.exists() and previous_version(final).exists():
        return previous_version(final)
    return final


def remove_stale_temporaries(final: Path, max_age_seconds: float = 3600.0) -> None:
    """Delete temporary siblings of `final` left by a killed writer (older than an hour, so a
    concurrent writer's fresh temporary directory is never touched)."""
    now = time.time()
    for leftover in final.parent.glob(f".{final.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > max_age_seconds:
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[str]]:
    """A text handle on a temporary sibling of `path`, renamed onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename."""
    with atomic_file(path) as handle:
        handle.write(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and paths appear in metrics and configs; JSON has no native type for them.
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def cache_home() -> Path:
    """transferkit's cache: $TRANSFERKIT_HOME, else ~/.cache/transferkit."""
    root = os.environ.get("TRANSFERKIT_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "transferkit"
    )
    return Path(root)
