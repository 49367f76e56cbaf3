"""What a model version remembers of every data batch it has learned.

Per batch: its held-out test examples (for the forgetting ledger) and a bounded, stratified
replay sample of its training examples (for `replay`, and to estimate EWC's Fisher information
on earlier data). Stored inside the artifact as JSON (texts) or PNG files plus JSON (images):
nothing pickled, and the artifact stays self-contained when the original files are gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.examples import RawData
from ..data.splits import subsample

MEMORY_DIR = "memory"


@dataclass
class Examples:
    items: list[Any]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Batch:
    """One batch of data a model version learned: a name, its test set and a replay sample."""

    name: str
    origin: str
    test: Examples
    replay: Examples


@dataclass
class Memory:
    modality: str
    batches: list[Batch] = field(default_factory=list)

    def names(self) -> list[str]:
        return [b.name for b in self.batches]


def sample_for_replay(train: RawData, size: int, seed: int) -> Examples:
    kept = subsample(train, size, seed, stratify=True)
    return Examples(list(kept.items), [str(label) for label in kept.labels])


def save_memory(memory: Memory, artifact_dir: Path) -> None:
    root = Path(artifact_dir) / MEMORY_DIR
    root.mkdir(parents=True, exist_ok=True)
    record = {"modality": memory.modality, "batches": []}
    for index, batch in enumerate(memory.batches):
        parts = {}
        for part in ("test", "replay"):
            examples: Examples = getattr(batch, part)
            items = examples.items if memory.modality == "text" else _save_images(examples.items, root / f"{index}-{part}")
            parts[part] = {"items": items, "labels": examples.labels}
        record["batches"].append({"name": batch.name, "origin": batch.origin, **parts})
    (root / "batches.json").write_text(json.dumps(record), encoding="utf-8")


def load_memory(artifact_dir: Path) -> Memory | None:
    path = Path(artifact_dir) / MEMORY_DIR / "batches.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    root = path.parent
    batches = []
    for entry in record["batches"]:
        parts = {}
        for part in ("test", "replay"):
            items = entry[part]["items"]
            if record["modality"] == "image":
                items = [str(root / relative) for relative in items]
            parts[part] = Examples(items, entry[part]["labels"])
        batches.append(Batch(entry["name"], entry["origin"], parts["test"], parts["replay"]))
    return Memory(record["modality"], batches)


def _save_images(items: list[Any], folder: Path) -> list[str]:
    """Write each image (path or uint8 array) as PNG; return paths relative to the memory dir."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, item in enumerate(items):
        image = Image.open(item).convert("RGB") if isinstance(item, (str, Path)) else Image.fromarray(np.asarray(item))
        image.save(folder / f"{i}.png")
        names.append(f"{folder.name}/{i}.png")
    return names
