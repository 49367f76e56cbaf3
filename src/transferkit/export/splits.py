"""The data an export is checked (and a pruned model recovered) on: the artifact's own saved splits.

An artifact remembers its data (transferkit.json "data") and the ids of its train/val/test
examples (split.json). Re-loading that data and keeping exactly those ids gives back the very
examples the source model was trained and tested on; `--verify-data` swaps in other labelled data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data import encode_eval_data, load_source
from ..data.examples import RawData, Split, TaskData
from ..errors import DataError


def _reference(meta: dict[str, Any]) -> TaskData:
    """The artifact's label map, as the encoder of evaluation data expects it."""
    empty = Split([], None, [])
    return TaskData(meta["modality"], meta["task"], meta.get("label_names", []), empty, empty, empty, "artifact")


def _load(spec: str, meta: dict[str, Any], hint: str) -> dict[str, RawData]:
    origin = meta.get("data", {})
    try:
        return load_source(spec, meta["task"], origin.get("text_column", "text"), origin.get("label_column", "label"))
    except DataError as exc:
        raise DataError(f"{exc} [{hint}]") from None


def _concat(parts: dict[str, RawData]) -> RawData:
    """All parts of a source in one (split folders hold ids relative to the root, so unique)."""
    first = next(iter(parts.values()))
    return RawData([i for p in parts.values() for i in p.items], [label for p in parts.values() for label in p.labels],
                   [i for p in parts.values() for i in p.ids], first.modality, first.origin, list(first.notes))


def split_source(meta: dict[str, Any], which: str) -> str:
    """Where the artifact's `which` split came from: its --data, else the file given for that
    split, else the training file (a validation or test split held out of it)."""
    origin = meta.get("data", {})
    spec = origin.get("data") or origin.get(which) or origin.get("train")
    if not spec:
        raise DataError("the artifact does not record its data (transferkit.json: data); pass --verify-data")
    return spec


def saved_split(directory: Path, meta: dict[str, Any], which: str, hint: str) -> Split:
    """The artifact's `which` split (train, val or test), re-loaded from its data by the ids in split.json."""
    spec = split_source(meta, which)
    raw = _concat(_load(spec, meta, hint))
    try:
        wanted = json.loads((Path(directory) / "split.json").read_text(encoding="utf-8"))[which]
    except (OSError, ValueError, KeyError):
        raise DataError(f"{directory}: no readable split.json with a {which} split [{hint}]") from None
    index = {example_id: i for i, example_id in enumerate(raw.ids)}
    missing = sum(example_id not in index for example_id in wanted)
    if missing:
        raise DataError(f"{spec}: {missing} of the artifact's {len(wanted)} {which} examples are not in it "
                        f"(the data changed since training?) [{hint}]")
    return encode_eval_data(raw.subset([index[example_id] for example_id in wanted]), _reference(meta))


def verification_split(directory: Path, meta: dict[str, Any], verify_data: str | None) -> tuple[Split, str]:
    """The labelled examples an export is verified on, and a description of them.

    By default the artifact's own test split; `verify_data` (a file, folder or builtin:NAME)
    replaces it, whole, unless it is the artifact's own data, whose test split is still used."""
    hint = "pass --verify-data with labelled data to verify on"
    own = meta.get("data", {}).get("data")
    if verify_data is None or verify_data == own:
        split = saved_split(directory, meta, "test", hint)
        return split, f"{split_source(meta, 'test')}, the artifact's test split ({len(split)} examples)"
    parts = _load(verify_data, meta, "check --verify-data")
    raw = parts.get("test") or parts.get("all") or _concat(parts)
    split = encode_eval_data(raw, _reference(meta))
    return split, f"{verify_data} ({len(split)} examples)"
