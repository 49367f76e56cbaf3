"""`transferkit predict --model DIR --input FILE|-`: streaming predictions, constant memory.

Input: a CSV/TSV/JSONL table (the text column), plain text lines, or (image models) lines of
image paths; `-` reads standard input. Output: JSONL (default) or CSV, written as it is made.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from ..errors import DataError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("predict", help="predict labels for new texts or images")
    parser.add_argument("--model", required=True, help="artifact directory (a run's model/)")
    parser.add_argument("--input", required=True, help="CSV/TSV/JSONL, text lines, image paths, or - for stdin")
    parser.add_argument("--output", default="-", help="output file (default: stdout)")
    parser.add_argument("--format", choices=("jsonl", "csv"), help="output format (default: from --output, else jsonl)")
    parser.add_argument("--text-column", help="column of the input table holding the text (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.set_defaults(run=run)


def _decoded_lines(handle: IO[bytes], where: str) -> Iterator[str]:
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where} line {number}: not valid UTF-8; re-save the input as UTF-8") from None


def read_inputs(handle: IO[bytes], where: str, suffix: str, text_column: str) -> Iterator[tuple[str, str]]:
    """(id, item) pairs, lazily; ids are line numbers of the input."""
    lines = _decoded_lines(handle, where)
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ",")
        for row in reader:
            if text_column not in row:
                raise DataError(f"{where}: no column {text_column!r}; columns are {', '.join(reader.fieldnames or [])}")
            yield str(reader.line_num), row[text_column]
    elif suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where} line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or text_column not in row:
                    raise DataError(f"{where} line {number}: expected an object with a {text_column!r} field")
                yield str(number), row[text_column]
    else:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield str(number), line.rstrip("\r\n")


def _writer(handle: IO[str], fmt: str, label_names: list[str], task: str):
    if fmt == "jsonl":
        return lambda example_id, result: handle.write(json.dumps({"id": example_id, **result}) + "\n")
    columns = ["id", "label", *[f"p_{n}" for n in label_names]] if task == "classification" else ["id", "value"]
    writer = csv.writer(handle)
    writer.writerow(columns)

    def write(example_id: str, result: dict[str, Any]) -> None:
        if task == "classification":
            writer.writerow([example_id, result["label"], *[f"{result['probabilities'][n]:.6f}" for n in label_names]])
        else:
            writer.writerow([example_id, f"{result['value']:.6f}"])

    return write


def run(args: argparse.Namespace) -> int:
    from ..io_utils import atomic_file
    from ..predictor import Predictor, chunked

    if args.input != "-" and not Path(args.input).is_file():
        raise DataError(f"{args.input}: input file not found")
    predictor = Predictor(args.model, batch_size=args.batch_size)
    text_column = args.text_column or predictor.meta.get("data", {}).get("text_column", "text")
    fmt = args.format or ("csv" if args.output.endswith(".csv") else "jsonl")
    with ExitStack() as stack:
        if args.input == "-":
            source, suffix = sys.stdin.buffer, ""
        else:
            source, suffix = stack.enter_context(open(args.input, "rb")), Path(args.input).suffix.lower()
        # A file output appears only when every input was predicted: no partial results on error.
        sink = sys.stdout if args.output == "-" else stack.enter_context(atomic_file(Path(args.output)))
        write = _writer(sink, fmt, predictor.label_names, predictor.task)
        for chunk in chunked(read_inputs(source, args.input, suffix, text_column), 256):
            results = predictor.predict([item for _, item in chunk])
            for (example_id, _), result in zip(chunk, results):
                write(example_id, result)
    return 0
