"""`transferkit models`: the zoo — name, modality, parameters, size, installed or not, source."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..zoo import ZOO, ZooEntry


def parameter_count(path: Path) -> int | None:
    """Count parameters from a weights file without building the model."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        total = 0
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                shape = handle.get_slice(key).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
        return total
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return sum(t.numel() for t in state.values() if hasattr(t, "numel") and t.is_floating_point())


def describe(entry: ZooEntry) -> dict:
    installed = entry.is_installed()
    row = {"name": entry.name, "modality": entry.modality, "installed": installed, "params": None, "size_mb": None,
           "source": entry.install_hint() if entry.packages else "built in (tests only, not pretrained)",
           "description": entry.description}
    if installed:
        path = entry.weights_path()
        if path is not None and path.is_file():
            row["params"] = parameter_count(path)
            row["size_mb"] = round(path.stat().st_size / 2**20, 1)
    return row


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list the model zoo")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = [describe(entry) for entry in ZOO.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<20}{'modality':<10}{'params':>10}{'size MB':>9}  {'installed':<10}source")
    for r in rows:
        params = f"{r['params'] / 1e6:.1f}M" if r["params"] else "-"
        size = f"{r['size_mb']:.1f}" if r["size_mb"] else "-"
        print(f"{r['name']:<20}{r['modality']:<10}{params:>10}{size:>9}  {'yes' if r['installed'] else 'no':<10}{r['source']}")
    print("\nAlso: dir:PATH (a local Hugging Face model directory) and hf:ORG/NAME (the Hub; needs internet).")
    return 0
