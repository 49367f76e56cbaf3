"""Image folders: class folders, train/val/test split folders, and corrupt or stray files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.data import prepare_task_data
from transferkit.data.images import read_image_folder
from transferkit.errors import DataError


def save_images(folder: Path, count: int, value: int, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(folder / f"{i}{suffix}")


def test_class_folders(image_folder):
    parts = read_image_folder(image_folder)
    assert set(parts) == {"all"}
    data = parts["all"]
    assert data.modality == "image"
    assert sorted(set(data.labels)) == ["bright", "dark"]
    assert data.labels.count("bright") == data.labels.count("dark") == 12
    # Items are readable paths; ids are paths relative to the root (stable across machines).
    assert all(Path(item).is_file() for item in data.items)
    assert all(Path(image_folder, i) == Path(item) for i, item in zip(data.ids, data.items))
    assert all(i.split(os.sep)[0] == label for i, label in zip(data.ids, data.labels))


def test_hidden_files_are_ignored_and_several_formats_read(tmp_path):
    save_images(tmp_path / "cats", 2, 10, ".png")
    save_images(tmp_path / "dogs", 2, 200, ".jpg")
    (tmp_path / "cats" / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / ".cache").mkdir()
    data = read_image_folder(tmp_path)["all"]
    assert len(data) == 4 and sorted(set(data.labels)) == ["cats", "dogs"]


@pytest.mark.parametrize("present", [("train", "val", "test"), ("train", "test"), ("train",)])
def test_split_folders_are_used_as_given(tmp_path, present):
    counts = {"train": 10, "val": 4, "test": 6}
    for split in present:
        save_images(tmp_path / split / "a", counts[split], 30)
        save_images(tmp_path / split / "b", counts[split], 220)
    parts = read_image_folder(tmp_path)
    assert set(parts) == set(present)
    for split in present:
        assert len(parts[split]) == 2 * counts[split]
        assert all(i.startswith(split + os.sep) for i in parts[split].ids)
    task = prepare_task_data(str(tmp_path), seed=0)
    given_ids = {split: set(parts[split].ids) for split in present}
    for split in present:
        if split != "train":  # given val/test are used as they are, not re-split
            assert set(getattr(task, split).ids) == given_ids[split]
    held = set(task.val.ids) | set(task.test.ids)
    assert set(task.train.ids) | held >= given_ids["train"]
    assert not set(task.train.ids) & held


@pytest.mark.parametrize("name,content", [
    ("broken.png", np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()),
    ("truncated.png", None),  # a valid PNG cut in half
    ("notes.txt", b"not an image"),
    ("README", b"no extension"),
])
def test_corrupt_or_foreign_file_names_the_file(image_folder, name, content):
    bad = image_folder / "dark" / name
    if content is None:
        whole = (image_folder / "dark" / "0.png").read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(str(bad))):
        read_image_folder(image_folder)


def test_corrupt_file_inside_a_split_folder_is_found(tmp_path):
    save_images(tmp_path / "train" / "a", 2, 0)
    save_images(tmp_path / "train" / "b", 2, 255)
    save_images(tmp_path / "test" / "a", 1, 0)
    bad = tmp_path / "test" / "a" / "x.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        read_image_folder(tmp_path)


@pytest.mark.parametrize("layout,pattern", [
    ("empty", r"no class sub-folders"),
    ("empty-classes", r"hold no images"),
    ("missing", r"directory not found"),
    ("empty-train-split", r"no class sub-folders"),
])
def test_empty_or_missing_folders(tmp_path, layout, pattern):
    root = tmp_path / "images"
    if layout != "missing":
        root.mkdir()
    if layout == "empty-classes":
        (root / "a").mkdir()
        (root / "b").mkdir()
    if layout == "empty-train-split":
        (root / "train").mkdir()
    with pytest.raises(DataError, match=pattern) as info:
        read_image_folder(root)
    assert str(root) in str(info.value)
