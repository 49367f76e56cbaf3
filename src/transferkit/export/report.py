"""The compression report: the verification figures of exports side by side, with a
latency-vs-accuracy plot, as Markdown and HTML; and the model card of an exported artifact.

Rows come from exported artifacts' verification.json files: one row per export, plus the fp32
source (its figures measured in the same fresh processes as the exports; with several exports,
the median of those measurements). Speed-ups compare each export with the source measured next
to it, in the same process, so a busy machine slows both alike.
"""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..evaluation.report import html_table, markdown_table  # noqa: E402
from ..io_utils import write_text_atomic  # noqa: E402

HEADER = ["format", "accuracy", "Δ accuracy (points)", "agreement", "max |Δ logit|", "size MB",
          "latency ms (batch 1)", "examples/s (batch 32)", "speed-up (batch 32)"]


def read_verification(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "verification.json").read_text(encoding="utf-8"))


def records(verifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record for the fp32 source (medians over its measurements), then one per export."""
    if len({(v["source"]["path"], v["data"]) for v in verifications}) != 1:
        raise ValueError("a compression report compares exports of one source verified on the same data")
    source = {"format": "fp32", "accuracy": verifications[0]["accuracy_source"], "agreement": 1.0,
              "max_abs_logit_diff": 0.0, "accuracy_drop_points": 0.0, "speedup_b32": 1.0,
              **{key: statistics.median(v["source"][key] for v in verifications)
                 for key in ("size_mb", "latency_ms_b1", "throughput_b32")}}
    exports = [{"format": v["format"], "accuracy": v["accuracy_export"],
                **{key: v[key] for key in ("agreement", "max_abs_logit_diff", "accuracy_drop_points", "speedup_b32",
                                           "size_mb", "latency_ms_b1", "throughput_b32")}} for v in verifications]
    return [source, *exports]


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    # 0.0 - drop, not -drop: no "-0.00" for an unchanged accuracy.
    return [[r["format"], f"{r['accuracy']:.4f}", f"{0.0 - r['accuracy_drop_points']:+.2f}", f"{r['agreement']:.4f}",
             f"{r['max_abs_logit_diff']:.4f}", f"{r['size_mb']:.2f}", f"{r['latency_ms_b1']:.2f}",
             f"{r['throughput_b32']:.1f}", f"{r['speedup_b32']:.2f}×"] for r in rows]


def text_table(verifications: list[dict[str, Any]]) -> str:
    """The comparison as aligned plain text, for the terminal."""
    rows = [HEADER, *table_rows(records(verifications))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def latency_accuracy_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy against batch-1 latency, one labelled point per format (up and left is better)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in rows:
        ax.scatter(row["latency_ms_b1"], row["accuracy"], s=50)
        ax.annotate(f"{row['format']}\n{row['throughput_b32']:.0f}/s at batch 32", (row["latency_ms_b1"], row["accuracy"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("latency per example at batch 1 (ms)")
    ax.set_ylabel("test accuracy")
    ax.set_title("latency vs accuracy")
    ax.margins(x=0.25, y=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_compression_report(directory: Path, verifications: list[dict[str, Any]], title: str) -> list[Path]:
    """report.md, report.html and latency_accuracy.png in `directory`; returns their paths."""
    directory = Path(directory)
    rows = records(verifications)
    plot = latency_accuracy_plot(rows, directory / "latency_accuracy.png")
    first = verifications[0]
    notes = [f"Verified on {first['data']}; each export loaded in a fresh process.",
             f"Threads: {json.dumps(first['measurement']['threads'])}; timings are medians of "
             f"{first['measurement']['repeats']} run(s).",
             "Speed-up: examples/s at batch 32 over the fp32 source's, measured in the same process."]
    md = [f"# {title}", "", markdown_table(HEADER, table_rows(rows)), "", *[f"- {n}" for n in notes], "",
          f"![latency vs accuracy]({plot.name})", ""]
    write_text_atomic(directory / "report.md", "\n".join(md))
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    body = [f"<h1>{html.escape(title)}</h1>", html_table(HEADER, table_rows(rows)),
            "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
            f'<p><img src="{plot.name}" alt="latency vs accuracy"></p>']
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    write_text_atomic(directory / "report.html", page)
    return [directory / "report.md", directory / "report.html", plot]


def export_card(meta: dict[str, Any], verification: dict[str, Any]) -> str:
    """The exported artifact's README.md: what it is, how it was checked, how to use it."""
    export = meta["export"]
    source = export["source"]
    lines = [
        f"# {meta['backbone']['source']} · {export['format']} export (transferkit)", "",
        f"- format: {export['format']} — {export['summary']}",
        f"- source artifact: {source['path']} (sha256 {source['sha256'][:16]}…)",
        f"- task: {meta['task']} ({meta['modality']}), labels: {', '.join(meta.get('label_names', []))}",
        f"- verified on {verification['data']} in a fresh process", "",
        "## Verification", "", markdown_table(HEADER, table_rows(records([verification]))), "",
        "All figures are in verification.json; report.html has the plot.", "",
        "## Use", "", "```python", "import transferkit", "model = transferkit.load('PATH/TO/export')",
        "model.predict([...])", "```", "",
        "`transferkit predict --model PATH/TO/export --input FILE` does the same from the shell.",
    ]
    return "\n".join(lines) + "\n"
