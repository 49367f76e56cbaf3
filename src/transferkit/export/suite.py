"""Several export formats of one artifact at once, and the compression report across them.

`transferkit export --format int8,onnx,onnx-int8,pruned` (or `--format all`: every format the
artifact's modality supports) exports each format into OUT/<format> — each verified exactly as
a single export is — then writes OUT/report.md, report.html and latency_accuracy.png: the fp32
source and every format side by side (accuracy, agreement, max |Δ logit|, size, latency at
batch 1, throughput at batch 32 and speed-up). All or nothing: OUT is assembled in a temporary
sibling and renamed into place only when every export passed its verification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io_utils import atomic_dir
from .artifact import read_meta, resolve_artifact_dir
from .exporter import ExportResult, check_out, check_source, export_model
from .formats import EXPORT_FORMATS, FORMATS, export_format
from .report import write_compression_report

PRUNING_OPTIONS = ("sparsity", "recover_epochs", "recover_lr")


def requested_formats(text: str, modality: str) -> list[str]:
    """'all' → every export format for `modality`; else the comma-separated names, each checked."""
    if text.strip() == "all":
        return [name for name in EXPORT_FORMATS if modality in FORMATS[name].modalities]
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"--format {text!r}: name each format once, e.g. int8,onnx or all")
    for name in names:
        export_format(name)  # an unknown name is one clear line before anything runs
    return names


def export_suite(model: str | Path, formats: list[str], out: str | Path, *, overwrite: bool = False,
                 quiet: bool = False, **options: Any) -> list[ExportResult]:
    """Each of `formats` into OUT/<format> (pruning `options` go to `pruned` only), plus the report."""
    source_dir = resolve_artifact_dir(model)
    meta = read_meta(source_dir)
    for name in formats:  # every format's refusal before the first export runs
        check_source(export_format(name), meta, source_dir)
    out = check_out(Path(out).expanduser(), source_dir, overwrite)
    pruning = {k: options.pop(k) for k in PRUNING_OPTIONS if options.get(k) is not None}
    if pruning and "pruned" not in formats:
        raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in pruning)} only apply to --format pruned")
    results = []
    with atomic_dir(out, overwrite=overwrite) as staging:
        for name in formats:
            result = export_model(source_dir, name, staging / name, quiet=quiet, **options,
                                  **(pruning if name == "pruned" else {}))
            results.append(ExportResult(out / name, result.verification))
        write_compression_report(staging, [r.verification for r in results],
                                 f"Compression of {source_dir} ({meta['backbone']['source']})")
    return results
