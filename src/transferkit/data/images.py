"""Image folders: one sub-folder per class, optionally inside train/ val/ test/ sub-folders."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .examples import RawData

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SPLIT_NAMES = ("train", "val", "test")


def is_image_folder(path: Path) -> bool:
    return Path(path).is_dir()


def read_image_folder(root: Path) -> dict[str, RawData]:
    """{'all': data} for class folders, or {'train', 'val'?, 'test'?} for split folders."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: directory not found")
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if "train" in subdirs and subdirs <= set(SPLIT_NAMES):
        return {name: _read_classes(root / name, root) for name in SPLIT_NAMES if name in subdirs}
    return {"all": _read_classes(root, root)}


def _read_classes(folder: Path, root: Path) -> RawData:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class sub-folders (expected {folder}/<class>/<image files>)")
    items, labels, ids = [], [], []
    for class_dir in classes:
        for file in sorted(class_dir.rglob("*")):
            if file.is_dir() or file.name.startswith("."):
                continue
            _check_image(file)
            items.append(str(file))
            labels.append(class_dir.name)
            ids.append(str(file.relative_to(root)))
    if not items:
        raise DataError(f"{folder}: the class folders hold no images")
    return RawData(items=items, labels=labels, ids=ids, modality="image", origin=str(root))


def _check_image(file: Path) -> None:
    """Fail early, naming the file, rather than mid-training on a corrupt or non-image file."""
    from PIL import Image, UnidentifiedImageError

    if file.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{file}: not an image file ({file.suffix or 'no extension'}); move it out of the image folder")
    try:
        with Image.open(file) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{file}: corrupt or unreadable image ({type(exc).__name__}); remove or replace it") from None
