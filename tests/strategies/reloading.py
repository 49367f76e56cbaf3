"""Helpers: the test logits a fit held in memory, and an artifact's logits in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import transferkit
import transferkit.pipeline as pipeline


def fit_capturing_logits(**options) -> tuple[transferkit.FitResult, np.ndarray]:
    """`transferkit.fit(**options)`, and the test logits its in-memory model produced (eval set 0)."""
    captured = []
    original = pipeline.after_outputs

    def spy(*args, **kwargs):
        captured.append(original(*args, **kwargs))
        return captured[-1]

    pipeline.after_outputs = spy
    try:
        result = transferkit.fit(**options)
    finally:
        pipeline.after_outputs = original
    return result, captured[0]


def fresh_process_logits(jobs: list[tuple[Path, list]], work: Path) -> list[np.ndarray]:
    """Each (artifact, items) loaded with transferkit.load and predicted in ONE new Python process.
    Items travel without pickle: texts and paths as JSON, uint8 images as .npy."""
    specs = []
    for i, (model_dir, items) in enumerate(jobs):
        if all(isinstance(item, str) for item in items):
            items_file = work / f"{i}.items.json"
            items_file.write_text(json.dumps(list(items)))
        else:
            items_file = work / f"{i}.items.npy"
            np.save(items_file, np.stack([np.asarray(item, dtype=np.uint8) for item in items]), allow_pickle=False)
        specs.append({"model": str(model_dir), "items": str(items_file), "out": str(work / f"{i}.npy")})
    (work / "jobs.json").write_text(json.dumps(specs))
    code = ("import json, sys, numpy as np, transferkit\n"
            "for job in json.load(open(sys.argv[1])):\n"
            "    path = job['items']\n"
            "    items = json.load(open(path)) if path.endswith('.json') else list(np.load(path, allow_pickle=False))\n"
            "    np.save(job['out'], transferkit.load(job['model']).logits(items))\n")
    done = subprocess.run([sys.executable, "-c", code, str(work / "jobs.json")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    return [np.load(spec["out"]) for spec in specs]
