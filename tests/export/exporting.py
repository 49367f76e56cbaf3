"""Shared by the export tests: tiny trained source artifacts and their exports, each made once per
test session (module-level caches), so every test reads the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import transferkit
from conftest import make_sentences, write_csv, write_image_folder
from transferkit.errors import TransferkitError
from transferkit.export.exporter import ExportResult, export_model
from transferkit.export.formats import EXPORT_FORMATS

MODELS = {"text": "tiny-bert", "image": "tiny-cnn"}
UNSUPPORTED = {("image", "int8")}  # dynamic quantization converts Linear layers only
CELLS = [(modality, fmt) for modality in MODELS for fmt in EXPORT_FORMATS]
SUPPORTED = [cell for cell in CELLS if cell not in UNSUPPORTED]
OPTIONS = {"pruned": {"sparsity": 0.5, "recover_epochs": 1}}

_SOURCES: dict[str, Path] = {}
_EXPORTS: dict[tuple[str, str], ExportResult | TransferkitError] = {}
_ROOTS: list[Path] = []


def sources(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"text": tiny-bert artifact, "image": tiny-cnn artifact}, trained to confident predictions
    (so int8 rounding flips none of them and the default --max-drop of 1 point holds)."""
    if not _SOURCES:
        root = factory.mktemp("export-sources")
        data = {"text": write_csv(root / "reviews.csv", make_sentences(240, seed=1)),
                "image": write_image_folder(root / "images", per_class=30)}
        for modality, model in MODELS.items():
            result = transferkit.fit(data=str(data[modality]), model=model, strategy="full", epochs=3, batch_size=8,
                                     lr=1e-3, seed=0, skip_before=True, quiet=True, out=str(root / f"run-{modality}"))
            _SOURCES[modality] = result.model_dir
    return _SOURCES


def export_dir(factory: pytest.TempPathFactory, modality: str, fmt: str) -> Path:
    """Where the matrix writes the export of the `modality` source as `fmt`."""
    if not _ROOTS:
        _ROOTS.append(factory.mktemp("exports"))
    return _ROOTS[0] / f"{modality}-{fmt}"


def exported(factory: pytest.TempPathFactory, modality: str, fmt: str) -> ExportResult | TransferkitError:
    """The export of the `modality` source as `fmt` (default --max-drop), or the error it raised."""
    if (modality, fmt) not in _EXPORTS:
        source = sources(factory)[modality]
        out = export_dir(factory, modality, fmt)
        try:
            _EXPORTS[modality, fmt] = export_model(source, fmt, out, quiet=True, **OPTIONS.get(fmt, {}))
        except TransferkitError as exc:
            _EXPORTS[modality, fmt] = exc
    return _EXPORTS[modality, fmt]


def source_test_split(source: Path) -> tuple[list, list[int]]:
    """The source artifact's test split: (items, class indices), rebuilt from its data and split.json."""
    from transferkit.export.artifact import read_meta
    from transferkit.export.splits import saved_split

    split = saved_split(source, read_meta(source), "test", "test")
    return split.items, split.targets.tolist()


def no_leftovers(out: Path) -> bool:
    """Neither `out` nor a temporary sibling of it exists."""
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
