"""Run directories: naming, the refuse-to-clobber rule, and what every run writes."""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

from .errors import OutputExistsError

RUN_MARKERS = ("config.yaml", "metrics.json", "model", "checkpoint", "split.json")


def default_run_dir(model: str, strategy: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model}-{strategy}").strip("-")
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def holds_run(directory: Path) -> bool:
    return directory.is_dir() and any((directory / marker).exists() for marker in RUN_MARKERS)


def claim_run_dir(directory: Path, overwrite: bool, resume: bool) -> None:
    """Refuse an existing run unless --overwrite (start over) or --resume (continue it)."""
    if resume or not directory.exists():
        return
    if not directory.is_dir():
        raise OutputExistsError(f"{directory} exists and is not a directory; choose another --out")
    if holds_run(directory) and not overwrite:
        raise OutputExistsError(f"{directory} already holds a run; pass --overwrite to replace it or --resume to continue it")
    if not holds_run(directory) and any(directory.iterdir()) and not overwrite:
        raise OutputExistsError(f"{directory} is not empty; choose an empty or new --out, or pass --overwrite")


def start_run_dir(directory: Path, overwrite: bool, resume: bool) -> None:
    if overwrite and not resume and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


class Log:
    """Status lines on stderr (so stdout stays clean for data); silent under --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"transferkit: {message}", file=sys.stderr, flush=True)
