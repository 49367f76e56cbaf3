"""Export verification: run artifacts in a fresh process, time them, and compare their predictions.

A fresh interpreter (`python -m transferkit.export.verify`) loads each artifact exactly as users
do (`transferkit.load`), so nothing of the process that built the export — modules in memory,
weights not yet written — can make a broken artifact look right. For each artifact it writes the
logits on the given items (`.npy`, read back with allow_pickle=False) and its timings:

- throughput_b32: examples per second predicting all items at batch size 32 (median of `repeats`
  passes, after a warm-up pass), preprocessing included, batches bucketed by length as the
  Predictor does;
- latency_ms_b1: median milliseconds of one `logits([item])` call over the first
  `LATENCY_EXAMPLES` items × `repeats`: the end-to-end cost of predicting one example.

The artifacts of one call are timed in turn (source, export, source, export, ...), so they share
whatever else the machine is doing at the time.

Timing uses the machine's default threads (recorded: PyTorch's intra-op threads; ONNX Runtime's
default pool of one thread per physical core). The parent compares the artifacts' logits:
agreement (share of identical predicted classes), max |Δ logit| and accuracy against the labels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TransferkitError, VerificationError

BATCH_SIZE = 32
LATENCY_EXAMPLES = 64


def write_items(items: Sequence[Any], directory: Path) -> Path:
    """Items for the fresh process, without pickle: texts/paths as JSON, uint8 images as one .npy."""
    if all(isinstance(item, str) for item in items):
        path = Path(directory) / "items.json"
        path.write_text(json.dumps(list(items)), encoding="utf-8")
    else:
        path = Path(directory) / "items.npy"
        np.save(path, np.stack([np.asarray(item, dtype=np.uint8) for item in items]), allow_pickle=False)
    return path


def read_items(path: Path) -> list[Any]:
    if Path(path).suffix == ".json":
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return list(np.load(path, allow_pickle=False))


def directory_mb(directory: Path) -> float:
    """Size on disk of every file under `directory`, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file()) / 1e6


def thread_settings() -> dict[str, Any]:
    import torch

    return {"torch_intra_op_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "onnxruntime_intra_op_threads": "default (one per physical core)"}


def _seconds(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(model_dirs: Sequence[Path], items: list[Any], repeats: int) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Logits and timings (see the module docstring) of each artifact on `items`.

    The logits are those of a default `transferkit.load`, what users get (dynamic int8 scales
    activations per batch, so the batch size can matter); that pass is also the warm-up. The
    timed runs alternate between the artifacts, so a busy spell on the machine slows all alike."""
    from ..predictor import load

    predictors = [load(model_dir) for model_dir in model_dirs]
    logits = [predictor.logits(items) for predictor in predictors]
    passes: list[list[float]] = [[] for _ in predictors]
    single: list[list[float]] = [[] for _ in predictors]
    for predictor in predictors:
        predictor.batch_size = BATCH_SIZE
    for _ in range(repeats):
        for i, predictor in enumerate(predictors):
            passes[i].append(_seconds(lambda: predictor.logits(items)))
        for item in items[:LATENCY_EXAMPLES]:
            for i, predictor in enumerate(predictors):
                single[i].append(_seconds(lambda: predictor.logits([item])))
    return [(logits[i], {"throughput_b32": len(items) / statistics.median(passes[i]),
                         "latency_ms_b1": 1000 * statistics.median(single[i]), "repeats": repeats,
                         "latency_examples": min(len(items), LATENCY_EXAMPLES), "threads": thread_settings()})
            for i in range(len(predictors))]


def run_fresh(model_dirs: Sequence[Path], items: Sequence[Any], workdir: Path, repeats: int = 1) -> list[tuple[np.ndarray, dict]]:
    """`measure` the artifacts in one new Python process; (logits, timing) per artifact, in order."""
    items_file = write_items(items, workdir)
    package_root = str(Path(__file__).resolve().parents[2])  # makes the same transferkit importable there
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "transferkit.export.verify", "--items", str(items_file), "--out", str(workdir),
               "--repeats", str(repeats), *map(str, model_dirs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise VerificationError(f"the exported artifact failed to run in a fresh process: {lines[-1] if lines else done.returncode}")
    return [(np.load(workdir / f"{i}.npy", allow_pickle=False), json.loads((workdir / f"{i}.json").read_text()))
            for i in range(len(model_dirs))]


def compare(targets: np.ndarray, source: np.ndarray, exported: np.ndarray) -> dict[str, float]:
    """How closely the export reproduces the source on labelled examples."""
    right_source = int(np.sum(source.argmax(axis=1) == targets))
    right_export = int(np.sum(exported.argmax(axis=1) == targets))
    return {"agreement": float(np.mean(source.argmax(axis=1) == exported.argmax(axis=1))),
            "max_abs_logit_diff": float(np.max(np.abs(source - exported))),
            "accuracy_source": right_source / len(targets), "accuracy_export": right_export / len(targets),
            # From counts, so one example in 100 is exactly 1.0 point (not 1.0000000000000009).
            "accuracy_drop_points": 100 * (right_source - right_export) / len(targets)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transferkit.export.verify",
                                     description="Predict and time artifacts in this fresh process.")
    parser.add_argument("models", nargs="+", type=Path, help="artifact directories, measured in this order")
    parser.add_argument("--items", required=True, type=Path, help="items.json (texts, image paths) or items.npy (uint8 images)")
    parser.add_argument("--out", required=True, type=Path, help="writes <i>.npy (logits) and <i>.json (timing) here")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        measured = measure(args.models, read_items(args.items), args.repeats)
    except TransferkitError as exc:  # one line for the parent to report
        print(exc, file=sys.stderr)
        return 2
    for i, (logits, timing) in enumerate(measured):
        np.save(args.out / f"{i}.npy", np.ascontiguousarray(logits, dtype=np.float32), allow_pickle=False)
        (args.out / f"{i}.json").write_text(json.dumps(timing), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
