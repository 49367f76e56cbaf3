"""The report of `transferkit compare`: strategies side by side, and accuracy vs trainable parameters.

Accuracy and macro-F1 are on each run's test split. With one seed a cell shows the value and its
95% percentile-bootstrap CI over test examples; the (true, predicted) pairs the bootstrap
resamples are exactly the cells of the confusion matrix, so it needs nothing else. With several
seeds a cell shows mean ± sample standard deviation over seeds (each seed: its own split and
initialisation), which is the variation that matters when choosing between strategies.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ..io_utils import write_text_atomic
from .plots import plt
from .report import html_table, markdown_table

HEADER = ["strategy", "test accuracy", "macro-F1", "trainable / total params (share)", "train time (s)",
          "peak memory (MB)", "artifact (MB)"]


def confusion_bootstrap(matrix: list[list[int]], n_resamples: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile-bootstrap CIs of accuracy and macro-F1 from a confusion matrix (rows: true)."""
    counts = np.asarray(matrix, dtype=np.int64)
    classes, n = len(counts), int(counts.sum())
    pairs = np.repeat(np.arange(classes * classes), counts.ravel())  # one code true·C + predicted per example
    samples = pairs[np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))]
    offsets = (np.arange(n_resamples) * classes * classes)[:, None]
    resampled = np.bincount((samples + offsets).ravel(), minlength=n_resamples * classes * classes)
    resampled = resampled.reshape(n_resamples, classes, classes)
    tp = np.diagonal(resampled, axis1=1, axis2=2)
    denominator = resampled.sum(axis=2) + resampled.sum(axis=1)  # 2·TP + FP + FN, per class
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=np.float64), where=denominator > 0)
    ci = lambda values: [float(v) for v in np.percentile(values, [2.5, 97.5])]  # noqa: E731
    return {"accuracy_ci95": ci(tp.sum(axis=1) / n), "macro_f1_ci95": ci(f1.mean(axis=1))}


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per strategy (in the order given): means, standard deviations over seeds, CIs."""
    summary = []
    for strategy in dict.fromkeys(r["strategy"] for r in records):
        runs = [r for r in records if r["strategy"] == strategy]
        entry: dict[str, Any] = {"strategy": strategy, "n_seeds": len(runs)}
        for key in ("accuracy", "macro_f1", "train_seconds", "peak_memory_mb", "artifact_mb"):
            values = np.array([r[key] for r in runs], dtype=np.float64)
            entry[f"{key}_mean"] = float(values.mean())
            entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        if len(runs) == 1:
            entry.update({key: runs[0][key] for key in ("accuracy_ci95", "macro_f1_ci95")})
        entry["trainable_params"], entry["total_params"] = runs[0]["trainable_params"], runs[0]["total_params"]
        summary.append(entry)
    return summary


def _score(entry: dict[str, Any], key: str) -> str:
    if entry["n_seeds"] == 1:
        low, high = entry[f"{key}_ci95"]
        return f"{entry[f'{key}_mean']:.4f} [{low:.4f}, {high:.4f}]"
    return f"{entry[f'{key}_mean']:.4f} ± {entry[f'{key}_std']:.4f}"


def _spread(entry: dict[str, Any], key: str, digits: int) -> str:
    mean = f"{entry[f'{key}_mean']:.{digits}f}"
    return mean if entry["n_seeds"] == 1 else f"{mean} ± {entry[f'{key}_std']:.{digits}f}"


def table_rows(summary: list[dict[str, Any]]) -> list[list[str]]:
    return [[e["strategy"], _score(e, "accuracy"), _score(e, "macro_f1"),
             f"{e['trainable_params']:,} / {e['total_params']:,} ({100 * e['trainable_params'] / e['total_params']:.2f}%)",
             _spread(e, "train_seconds", 1), _spread(e, "peak_memory_mb", 0), _spread(e, "artifact_mb", 2)]
            for e in summary]


def accuracy_vs_parameters(summary: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy (error bars: std over seeds, or the 95% CI with one seed) vs trainable parameters."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for entry in summary:
        x, y = entry["trainable_params"], entry["accuracy_mean"]
        if entry["n_seeds"] == 1:
            low, high = entry["accuracy_ci95"]
            error = [[y - low], [high - y]]
        else:
            error = [[entry["accuracy_std"]], [entry["accuracy_std"]]]
        ax.errorbar([x], [y], yerr=error, fmt="o", capsize=4)
        ax.annotate(entry["strategy"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy vs trainable parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_compare_report(out: Path, summary: list[dict[str, Any]], context: dict[str, Any]) -> None:
    """report.md, report.html and accuracy_vs_params.png in `out`."""
    figure = accuracy_vs_parameters(summary, Path(out) / "accuracy_vs_params.png")
    rows = table_rows(summary)
    seeds = context["seeds"]
    note = ("value [95% bootstrap CI over test examples]" if seeds == 1
            else f"mean ± std over {seeds} seeds (each seed: its own split and initialisation)")
    setting = ", ".join(f"{k}={v}" for k, v in context.items() if v is not None)
    title = f"transferkit compare: {context['model']} on {context['data']}"
    explain = (f"Scores: {note}. Trainable params: the most that trained at any point (schedules that unfreeze, "
               "such as head-then-full, count every layer they unfroze). Train time: the run's training, including "
               "encoding its inputs and any frozen computation done once (linear-probe's features). Peak memory: "
               "peak resident memory of the run's own process. Artifact: the saved model/ directory. MB = 10^6 bytes.")
    md = [f"# {title}", "", setting, "", markdown_table(HEADER, rows), "", explain, "", f"![{figure.stem}]({figure.name})", "",
          "One record per strategy × seed: compare.json."]
    write_text_atomic(Path(out) / "report.md", "\n".join(md) + "\n")
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    body = (f"<h1>{html.escape(title)}</h1><p>{html.escape(setting)}</p>{html_table(HEADER, rows)}"
            f"<p>{html.escape(explain)}</p><p><img src='{figure.name}' alt='{figure.stem}'></p>"
            "<p>One record per strategy × seed: compare.json.</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")
    write_text_atomic(Path(out) / "report.html", page + "\n")
