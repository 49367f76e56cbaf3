"""`transferkit export`: a trained artifact made faster or smaller, and verified before it exists.

    source artifact → build (formats.py) into a temporary sibling of --out
                    → verify: source and export each loaded in a fresh process, run on the
                      artifact's test split (or --verify-data), compared and timed
                    → accuracy drop > --max-drop: VerificationError, the temporary directory is removed
                    → else verification.json, README.md and the report are added and it is renamed to --out

Every check of the user's input runs before anything is written, so bad input, a failed build
and a failed verification all leave nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.examples import Split
from ..errors import ConfigError, OutputExistsError, VerificationError
from ..io_utils import atomic_dir, write_json_atomic
from ..runs import Log
from .artifact import FORMAT, FORMAT_VERSION, META_FILE, library_versions, load_model, read_meta, resolve_artifact_dir
from .artifact import write_artifact
from .formats import ExportFormat, ExportOptions, Source, artifact_format, export_format
from .report import export_card, write_compression_report
from .splits import verification_split
from .verify import BATCH_SIZE, compare, directory_mb, run_fresh


@dataclass
class ExportResult:
    directory: Path
    verification: dict[str, Any]


def export_model(model: str | Path, format: str, out: str | Path, *, max_drop: float = 1.0,
                 verify_data: str | None = None, sparsity: float | None = None, recover_epochs: int | None = None,
                 recover_lr: float | None = None, repeats: int = 1, seed: int = 0, overwrite: bool = False,
                 quiet: bool = False) -> ExportResult:
    """Export the artifact at `model` as `format` into `out`, verified (see the module docstring).

    `max_drop`: the largest accepted accuracy loss in points (1.0: 0.81 → 0.80 passes);
    `repeats`: timing runs per measurement (the median is kept)."""
    log = Log(quiet)
    fmt = export_format(format)
    options = _options(fmt, sparsity, recover_epochs, recover_lr, seed)
    if not math.isfinite(max_drop) or repeats < 1:
        raise ConfigError("--max-drop must be a finite number of accuracy points and --repeats >= 1")
    source_dir = resolve_artifact_dir(model)
    meta = read_meta(source_dir)
    check_source(fmt, meta, source_dir)
    out = check_out(Path(out).expanduser(), source_dir, overwrite)
    test, described = verification_split(source_dir, meta, verify_data)
    source = Source(source_dir, meta, load_model(source_dir)[0])
    with atomic_dir(out, overwrite=overwrite) as staging:
        log(f"exporting {source_dir} as {fmt.name}")
        exported_meta = _build(fmt, source, staging, options)
        log(f"verifying on {described}, in a fresh process")
        verification = _verify(fmt, source, staging, test, described, max_drop, repeats)
        if verification["accuracy_drop_points"] > max_drop:
            raise VerificationError(
                f"{fmt.name} export failed verification: accuracy {verification['accuracy_source']:.4f} → "
                f"{verification['accuracy_export']:.4f} on {described}, a drop of "
                f"{verification['accuracy_drop_points']:.2f} points > --max-drop {max_drop:g}; nothing was written to {out}")
        write_json_atomic(staging / "verification.json", verification)
        (staging / "README.md").write_text(export_card(exported_meta, verification), encoding="utf-8")
        write_compression_report(staging, [verification], f"{fmt.name} export of {source_dir}")
    log(f"{fmt.name} export verified and written to {out}")
    return ExportResult(out, verification)


def _options(fmt: ExportFormat, sparsity: float | None, recover_epochs: int | None, recover_lr: float | None,
             seed: int) -> ExportOptions:
    given = {"sparsity": sparsity, "recover_epochs": recover_epochs, "recover_lr": recover_lr}
    given = {name: value for name, value in given.items() if value is not None}
    if given and fmt.name != "pruned":
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"{flags} only apply to --format pruned, not {fmt.name}")
    return ExportOptions(**given, seed=seed)


def check_source(fmt: ExportFormat, meta: dict[str, Any], directory: Path) -> None:
    """Refuse, before anything is written, a source this format cannot be exported from."""
    if meta.get("task") != "classification":
        raise ConfigError(f"{directory} is a {meta.get('task')} model; export verification compares classification "
                          "accuracy, so only classification artifacts can be exported")
    current = artifact_format(meta, directory)
    if not current.float_weights:
        raise ConfigError(f"{directory} is already a {current.name} export; export from its float32 source "
                          f"{meta['export']['source']['path']}")
    if "adapter" in meta["backbone"]:  # only the adapter is stored: pruning or quantizing the base would be lost
        raise ConfigError(f"{directory} holds a {meta['backbone']['adapter'].get('method', 'peft')} adapter, not a "
                          f"standalone model; run `transferkit merge --model {directory} --out DIR` and export DIR")
    if meta["modality"] not in fmt.modalities:
        raise ConfigError(f"--format {fmt.name} does not support {meta['backbone'].get('source', 'this')} "
                          f"({meta['modality']} backbone): {fmt.unsupported_because}")


def check_out(out: Path, source_dir: Path, overwrite: bool, what: str = "the source artifact") -> Path:
    """`out`, unless it overlaps the source or exists (without `overwrite`)."""
    resolved, source = out.resolve(), source_dir.resolve()
    if resolved == source or source in resolved.parents or resolved in source.parents:
        raise ConfigError(f"--out {out} overlaps {what} {source_dir}; choose a directory outside it")
    if out.exists() and not (overwrite and out.is_dir()):
        raise OutputExistsError(f"{out} already exists; choose another --out or pass --overwrite to replace it")
    return out


def artifact_sha256(directory: Path) -> str:
    """sha256 over every file of an artifact (relative path and bytes): identifies the exact source."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _build(fmt: ExportFormat, source: Source, staging: Path, options: ExportOptions) -> dict[str, Any]:
    """Write the exported artifact into `staging`; returns its transferkit.json content."""
    model, details = fmt.build(source, staging, options)
    kept = {k: v for k, v in source.meta.items()
            if k not in ("format", "format_version", "head", "backbone", "versions", "export", "metrics")}
    origin = {"path": str(source.directory.resolve()), "sha256": artifact_sha256(source.directory),
              "format": artifact_format(source.meta, source.directory).name, "metrics": source.meta.get("metrics")}
    export = {"format": fmt.name, "summary": fmt.summary, **details, "source": origin,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # The weights-free part of the source's backbone description: where it came from, its hash.
    backbone = {k: v for k, v in source.meta["backbone"].items() if k not in ("path", "weights")}
    meta = {**kept, "backbone": backbone, "export": export}
    split = (source.directory / "split.json").read_text(encoding="utf-8")
    if model is not None:
        write_artifact(staging, model, meta, card="", extra_files={"split.json": split})
        return read_meta(staging)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "head": source.meta["head"],
            "versions": {**library_versions(), **_onnx_versions()}}
    (staging / META_FILE).write_text(json.dumps(full, indent=2, default=str) + "\n", encoding="utf-8")
    (staging / "split.json").write_text(split, encoding="utf-8")
    return full


def _onnx_versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("onnx", "onnxruntime")}


def _verify(fmt: ExportFormat, source: Source, staging: Path, test: Split, described: str, max_drop: float,
            repeats: int) -> dict[str, Any]:
    """verification.json: agreement, accuracies, size and speed of the export next to its source."""
    size_mb = directory_mb(staging)  # the artifact as it ships, before its report is added
    with tempfile.TemporaryDirectory(prefix="transferkit-verify-") as work:
        (source_logits, source_timing), (logits, timing) = run_fresh([source.directory, staging], test.items, Path(work), repeats)
    figures = compare(test.targets, source_logits, logits)
    return {
        "format": fmt.name, **figures, "max_drop_points": max_drop,
        "size_mb": size_mb, "latency_ms_b1": timing["latency_ms_b1"], "throughput_b32": timing["throughput_b32"],
        "speedup_b32": timing["throughput_b32"] / source_timing["throughput_b32"],
        "source": {"path": str(source.directory.resolve()), "size_mb": directory_mb(source.directory),
                   "latency_ms_b1": source_timing["latency_ms_b1"], "throughput_b32": source_timing["throughput_b32"]},
        "data": described, "n": len(test),
        "measurement": {"fresh_process": True, "batch_size": BATCH_SIZE, "repeats": repeats,
                        "latency_examples": timing["latency_examples"], "threads": timing["threads"],
                        "load_average_1min": os.getloadavg()[0]},
    }
