"""Text tables: CSV, TSV and JSONL files with a text column and a label column."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import DataError
from .examples import RawData

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".json": None, ".ndjson": None}


def read_utf8(path: Path) -> str:
    """Decode a whole file as UTF-8; on failure name the line and byte so it can be fixed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a CSV/TSV/JSONL file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); re-save the file as UTF-8"
        ) from None


def read_table(path: Path, text_column: str, label_column: str | None, need_labels: bool = True) -> RawData:
    """Read texts and labels; `label_column=None` or need_labels=False reads texts only."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv, .tsv or .jsonl")
    text = read_utf8(path)
    rows = _jsonl_rows(path, text) if TABLE_SUFFIXES[suffix] is None else _delimited_rows(path, text, TABLE_SUFFIXES[suffix])
    if not rows:
        raise DataError(f"{path}: no data rows")
    wanted = [text_column] + ([label_column] if need_labels and label_column else [])
    columns = list(rows[0][1].keys())
    for column in wanted:
        if column not in columns:
            flag = "--text-column" if column == text_column else "--label-column"
            raise DataError(f"{path}: unknown column {column!r}; columns are {', '.join(columns)} (set {flag})")
    items, labels, ids = [], [], []
    for line, row in rows:
        value = row.get(text_column)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path} line {line}: empty or missing text in column {text_column!r}")
        items.append(value)
        ids.append(str(line))
        if need_labels and label_column:
            label = row.get(label_column)
            if label is None or (isinstance(label, str) and not label.strip()):
                raise DataError(f"{path} line {line}: empty or missing label in column {label_column!r}")
            labels.append(label.strip() if isinstance(label, str) else label)
        else:
            labels.append(None)
    return RawData(items=items, labels=labels, ids=ids, modality="text", origin=str(path))


def _delimited_rows(path: Path, text: str, delimiter: str) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise DataError(f"{path}: empty file (no header row)")
    rows = []
    try:
        for row in reader:
            if None in row:
                raise DataError(f"{path} line {reader.line_num}: more fields than the header has columns")
            if all(v in (None, "") for v in row.values()):
                continue
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: malformed row ({exc})") from None
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: expected a JSON object per line")
        rows.append((number, row))
    return rows
