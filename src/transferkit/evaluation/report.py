"""The human report of a run (report.md and report.html, with plots) and the model card."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..io_utils import write_text_atomic
from .plots import confusion_matrices, learning_curves


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def ci_text(delta: dict[str, Any]) -> str:
    low, high = delta["ci95"]
    return f"{delta['mean']:+.4f} [{low:+.4f}, {high:+.4f}]"


def comparison_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """Rows: evaluation set, BEFORE, AFTER and delta with its 95% CI, for the headline metric."""
    key = "accuracy" if metrics["task"] == "classification" else "mae"
    delta_key = "delta_accuracy" if metrics["task"] == "classification" else "delta_mae_reduction"
    sets = {"test (in-domain)": metrics, **metrics.get("eval_sets", {})}
    rows = []
    for name, entry in sets.items():
        before = entry.get("before", {}).get(key)
        delta = entry.get(delta_key)
        rows.append([name, str(entry.get("n", metrics.get("n_test"))), _fmt(before) if before is not None else "—",
                     _fmt(entry["after"][key]), ci_text(delta) if delta else "—"])
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def throughput_line(t: dict[str, Any]) -> str:
    """Examples and useful units per second, padding, and the share of the machine's peak."""
    unit = t.get("unit", "tokens" if "useful_tokens_per_s" in t else "images")
    parts = [f"{t['examples_per_s']:.1f} examples/s", f"{t[f'useful_{unit}_per_s']:.0f} useful {unit}/s"]
    if "padding_share" in t:
        parts.append(f"padding {100 * t['padding_share']:.1f}% of positions")
    if "peak_share" in t:
        parts.append(f"steps at {t['useful_gflops_per_s']:.1f} useful GFLOP/s per process = {100 * t['peak_share']:.1f}% "
                     f"of this machine's {t['precision']} matmul peak ({t['peak_gflops']:.0f} GFLOP/s)")
    elif "useful_gflops_per_s" in t:
        parts.append(f"steps at {t['useful_gflops_per_s']:.1f} useful GFLOP/s per process (share of peak: run "
                     "`transferkit bench-peak` once on an idle machine)")
    if "threads" in t:
        parts.append(f"{t['precision']}, {t['threads']} thread(s) × {t.get('processes', 1)} process(es)")
    return "; ".join(parts)


def report_sections(metrics: dict[str, Any], label_names: list[str]) -> list[tuple[str, list[str], list[list[str]]]]:
    key = "accuracy" if metrics["task"] == "classification" else "MAE"
    sections = [("Before vs after", ["evaluation set", "n", f"BEFORE {key}", f"AFTER {key}", "Δ (95% paired bootstrap CI)"],
                 comparison_rows(metrics))]
    summary = [["model", metrics["model"]], ["strategy", metrics["strategy"]], ["data", metrics["data"]],
               ["trainable / total parameters", f"{metrics['trainable_params']:,} / {metrics['total_params']:,}"],
               ["training time", f"{metrics['train_seconds']:.1f} s ({metrics['epochs_run']} epochs)"],
               ["throughput", throughput_line(metrics["throughput"])],
               ["BEFORE is", metrics.get("before", {}).get("description", "skipped")]]
    sections.insert(0, ("Run", ["", ""], summary))
    if metrics["task"] == "classification":
        rows = []
        for name in label_names:
            for which in ("before", "after"):
                if which in metrics:
                    c = metrics[which]["per_class"][name]
                    rows.append([name, which.upper(), _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["f1"]), str(c["support"])])
        sections.append(("Per class (test)", ["class", "model", "precision", "recall", "F1", "support"], rows))
    return sections


def write_report(run_dir: Path, metrics: dict[str, Any], history: list[dict[str, Any]], label_names: list[str]) -> None:
    run_dir = Path(run_dir)
    figures = [learning_curves(history, run_dir / "learning_curves.png")]
    if metrics["task"] == "classification":
        matrices = {w.upper(): metrics[w]["confusion_matrix"] for w in ("before", "after") if w in metrics}
        figures.append(confusion_matrices(matrices, label_names, run_dir / "confusion.png"))
    figures = [f for f in figures if f is not None]
    sections = report_sections(metrics, label_names)
    title = f"transferkit run: {metrics['model']} · {metrics['strategy']} · {metrics['data']}"
    md = [f"# {title}", "", f"**{metrics['verdict']}**", ""]
    for name, entry in metrics.get("eval_sets", {}).items():
        if "verdict" in entry:
            md += [f"On {name}: {entry['verdict']}", ""]
    for heading, header, rows in sections:
        md += [f"## {heading}", "", markdown_table(header, rows), ""]
    md += [f"![{f.stem}]({f.name})" for f in figures]
    md += ["", *[f"- note: {n}" for n in metrics.get("notes", [])]]
    write_text_atomic(run_dir / "report.md", "\n".join(md) + "\n")
    body = [f"<h1>{html.escape(title)}</h1>", f"<p><strong>{html.escape(metrics['verdict'])}</strong></p>"]
    for name, entry in metrics.get("eval_sets", {}).items():
        if "verdict" in entry:
            body.append(f"<p>On {html.escape(name)}: {html.escape(entry['verdict'])}</p>")
    for heading, header, rows in sections:
        body += [f"<h2>{html.escape(heading)}</h2>", html_table(header, rows)]
    body += [f'<p><img src="{html.escape(f.name)}" alt="{html.escape(f.stem)}"></p>' for f in figures]
    body += [f"<p><em>note: {html.escape(n)}</em></p>" for n in metrics.get("notes", [])]
    style = "body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
    write_text_atomic(run_dir / "report.html", page + "\n")


def model_card(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The artifact's README.md: what it is, how it was made, how well it does, how to load it."""
    rows = comparison_rows(metrics)
    key = "accuracy" if metrics["task"] == "classification" else "MAE"
    lines = [
        f"# {meta['backbone']['source']} adapted with transferkit", "",
        f"- task: {meta['task']} ({meta['modality']})" + (f", labels: {', '.join(meta['label_names'])}" if meta["label_names"] else ""),
        f"- source model: {meta['backbone']['source']} (weights sha256 {meta['backbone']['source_weights_sha256'][:16]}…)",
        f"- strategy: {meta['strategy']}",
        f"- data: {meta['data']['origin']} (split in split.json, seed {meta['data']['seed']})", "",
        "## Results", "", markdown_table(["evaluation set", "n", f"BEFORE {key}", f"AFTER {key}", "Δ (95% CI)"], rows), "",
        metrics["verdict"], "", "## Use", "", "```python", "import transferkit",
        "model = transferkit.load('PATH/TO/model')", "model.predict([...])", "```", "",
        "`transferkit predict --model PATH/TO/model --input FILE` does the same from the shell.",
    ]
    if meta["modality"] == "text" and "adapter" not in meta["backbone"]:  # adapters: export/adapters.py's card
        lines += ["", "The fine-tuned encoder in `encoder/` is a standard Hugging Face model directory:",
                  "`transformers.AutoModel.from_pretrained('PATH/TO/model/encoder')` (features = mean of the last hidden states)."]
    return "\n".join(lines) + "\n"
