"""Text tables (CSV/TSV/JSONL): reading with default and custom columns, and every user error
naming the file and the line or column so it can be fixed."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from transferkit.data import load_source
from transferkit.data.tables import read_table
from transferkit.errors import DataError

ROWS = [("a lovely, \"quoted\" film", "pos"), ("dull\tand slow", "neg"), ("great fun", "pos"), ("poor plot", "neg")]


def write_table(path: Path, rows, header=("text", "label")) -> Path:
    """Write rows as CSV, TSV or JSONL depending on the suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows), encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
@pytest.mark.parametrize("header", [("text", "label"), ("review", "sentiment")], ids=["default", "custom"])
def test_reads_texts_and_labels(tmp_path, suffix, header):
    path = write_table(tmp_path / f"reviews{suffix}", ROWS, header)
    data = read_table(path, *header)
    assert data.items == [text for text, _ in ROWS]
    assert data.labels == [label for _, label in ROWS]
    assert data.modality == "text"
    assert data.origin == str(path)
    assert len(set(data.ids)) == len(ROWS)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_load_source_passes_custom_columns(tmp_path, suffix):
    path = write_table(tmp_path / f"t{suffix}", ROWS, ("body", "y"))
    parts = load_source(str(path), "classification", text_column="body", label_column="y")
    assert set(parts) == {"all"}
    assert parts["all"].labels == [label for _, label in ROWS]


def test_utf8_bom_and_non_ascii_text_are_read(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\ncafé crème ✓,pos\nnaïve,neg\n".encode("utf-8"))
    data = read_table(path, "text", "label")
    assert data.items == ["café crème ✓", "naïve"]


def test_blank_lines_are_skipped_and_ids_are_line_numbers(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n', encoding="utf-8")
    assert read_table(path, "text", "label").ids == ["1", "3"]


def test_texts_only_when_labels_not_needed(tmp_path):
    path = tmp_path / "unlabelled.csv"
    path.write_text("text\nhello\nworld\n", encoding="utf-8")
    data = read_table(path, "text", "label", need_labels=False)
    assert data.items == ["hello", "world"] and data.labels == [None, None]


# --- errors -----------------------------------------------------------------------------------
# Each case: (file name, raw bytes, column args, regexes the message must match besides the path).
ERROR_CASES = {
    "empty-csv": ("e.csv", b"", ("text", "label"), [r"empty file"]),
    "empty-jsonl": ("e.jsonl", b"", ("text", "label"), [r"no data rows"]),
    "header-only": ("h.csv", b"text,label\n", ("text", "label"), [r"no data rows"]),
    "unknown-text-column": (
        "c.csv", b"review,label\nok,pos\n", ("text", "label"), [r"unknown column 'text'", r"review, label", r"--text-column"]),
    "unknown-label-column": (
        "c.tsv", b"text\tstars\nok\t5\n", ("text", "label"), [r"unknown column 'label'", r"text, stars", r"--label-column"]),
    "unknown-column-jsonl": (
        "c.jsonl", b'{"body": "x", "label": "a"}\n', ("text", "label"), [r"unknown column 'text'", r"body, label", r"--text-column"]),
    "non-utf8": ("latin.csv", b"text,label\nfine,pos\ncaf\xe9,neg\n", ("text", "label"), [r"line 3\b", r"UTF-8", r"0xe9"]),
    "malformed-json": (
        "bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b", "label": \n', ("text", "label"), [r"line 2\b", r"JSON"]),
    "json-not-object": ("list.jsonl", b'{"text": "a", "label": "x"}\n["b", "y"]\n', ("text", "label"), [r"line 2\b", r"object"]),
    "empty-text": ("t.csv", b"text,label\nok,pos\n,neg\nfine,pos\n", ("text", "label"), [r"line 3\b", r"text", r"'text'"]),
    "blank-text": ("t.jsonl", b'{"text": "a", "label": "x"}\n{"text": "   ", "label": "y"}\n', ("text", "label"), [r"line 2\b", r"'text'"]),
    "empty-label": ("l.tsv", b"text\tlabel\nok\tpos\nfine\tneg\nbad\t\n", ("text", "label"), [r"line 4\b", r"label", r"'label'"]),
    "missing-label-jsonl": ("l.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b"}\n', ("text", "label"), [r"line 2\b", r"'label'"]),
    "extra-field": ("x.csv", b"text,label\nok,pos,surplus\n", ("text", "label"), [r"line 2\b", r"more fields"]),
    "unsupported-suffix": ("data.xlsx", b"whatever", ("text", "label"), [r"unsupported file type \.xlsx"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_bad_tables_raise_data_error_naming_file_and_place(tmp_path, case):
    name, raw, columns, patterns = ERROR_CASES[case]
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(DataError) as info:
        read_table(path, *columns)
    message = str(info.value)
    assert str(path) in message
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_missing_file_or_directory(tmp_path, make):
    path = tmp_path / "reviews.csv"
    if make == "directory":
        path.mkdir()
    with pytest.raises(DataError, match=re.escape(str(path))):
        read_table(path, "text", "label")


def test_load_source_missing_file_hints_at_builtin(tmp_path):
    with pytest.raises(DataError, match="builtin:NAME"):
        load_source(str(tmp_path / "nope.csv"), "classification", "text", "label")
