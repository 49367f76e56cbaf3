"""Shared fixtures: small synthetic text tables and image folders, made fresh per test session."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

POSITIVE = "good great excellent lovely superb fun".split()
NEGATIVE = "bad awful boring terrible dull poor".split()
FILLER = "the movie was plot actors and it really a".split()


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short sentences whose label is carried by one sentiment word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label"), delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows), encoding="utf-8")
    return path


def write_image_folder(root: Path, per_class: int = 12, size: int = 20, seed: int = 0) -> Path:
    """Two classes of PNGs: bright and dark noisy squares."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, base in (("bright", 200), ("dark", 40)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture
def text_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "reviews.csv", make_sentences(120))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images")


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never reach the Hub, and never print progress bars.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Two intra-op threads on a busy two-core machine make tiny models 10-50x slower: one thread
    for torch here, and for the thread count `fit` sets (TRANSFERKIT_THREADS, which CLI processes
    started by a test inherit)."""
    import torch

    before, before_env = torch.get_num_threads(), os.environ.get("TRANSFERKIT_THREADS")
    os.environ["TRANSFERKIT_THREADS"] = "1"
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if before_env is None:
            os.environ.pop("TRANSFERKIT_THREADS", None)
        else:
            os.environ["TRANSFERKIT_THREADS"] = before_env
