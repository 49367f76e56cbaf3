"""The report of a distillation run: teacher, student without and with distillation, side by side."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..io_utils import write_text_atomic
from .plots import plt
from .report import ci_text, html_table, markdown_table

MODELS = {"teacher": "teacher", "student_plain": "student without distillation",
          "student_distilled": "student with distillation"}


def verdict(delta: dict[str, Any]) -> str:
    """A plain-language reading of the paired distilled − plain accuracy difference."""
    low, high = delta["ci95"]
    change = f"accuracy {delta['mean']:+.3f} against the student trained without the teacher"
    if low > 0:
        return f"Distillation helped: {change} (95% CI {low:+.3f} to {high:+.3f})."
    if high < 0:
        return f"Distillation HURT: {change} (95% CI {low:+.3f} to {high:+.3f})."
    return f"Distillation did not clearly help: {change}, and the 95% CI ({low:+.3f} to {high:+.3f}) includes zero."


def model_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """One row per model: parameters, accuracy with its CI, macro-F1, closeness to the teacher, speed."""
    rows = []
    for key, label in MODELS.items():
        entry = metrics[key]
        low, high = entry["accuracy_ci95"]
        latency = entry["latency"]
        throughput = next(v for k, v in latency.items() if k.startswith("examples_per_s"))
        rows.append([label, f"{entry['parameters']:,}", f"{entry['accuracy']:.4f} [{low:.4f}, {high:.4f}]",
                     f"{entry['macro_f1']:.4f}",
                     f"{entry['agreement_with_teacher']:.4f}" if "agreement_with_teacher" in entry else "—",
                     ci_text(entry["vs_teacher"]) if "vs_teacher" in entry else "—",
                     f"{latency['ms_per_example_batch1']:.1f}", f"{throughput:.1f}"])
    return rows


MODEL_HEADER = ["model", "parameters", "accuracy [95% CI]", "macro-F1", "agreement with teacher",
                "Δ accuracy vs teacher [95% CI]", "ms/example (batch 1)", "examples/s (batch 32)"]


def _sections(metrics: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    settings = metrics["distillation"]
    paired = [["accuracy", ci_text(metrics["delta_accuracy"])], ["agreement with the teacher", ci_text(metrics["delta_agreement"])]]
    run = [["teacher", f"{settings['teacher']} (sha256 {settings['teacher_sha256'][:16]}…)"],
           ["student", f"{metrics['student']} · {metrics['strategy']}"], ["data", metrics["data"]],
           ["loss", f"α·T²·KL + (1−α)·CE with T = {settings['temperature']}, α = {settings['alpha']}"],
           ["transfer set", f"{metrics['n_train']} labelled + {settings['n_unlabelled']} unlabelled examples"],
           ["training time", f"{metrics['student_plain']['train_seconds']:.1f} s without, "
                             f"{metrics['student_distilled']['train_seconds']:.1f} s with distillation"],
           ["CPU threads", str(metrics["teacher"]["latency"]["threads"])]]
    return [("Run", ["", ""], run),
            (f"Test split (n = {metrics['n_test']})", MODEL_HEADER, model_rows(metrics)),
            ("Distilled − plain student (paired bootstrap, same test examples)", ["metric", "Δ [95% CI]"], paired)]


def accuracy_plot(metrics: dict[str, Any], path: Path) -> Path:
    """Test accuracy (95% CI) and agreement with the teacher, per model."""
    labels = list(MODELS.values())
    entries = [metrics[key] for key in MODELS]
    accuracy = [e["accuracy"] for e in entries]
    errors = [[a - e["accuracy_ci95"][0] for a, e in zip(accuracy, entries)],
              [e["accuracy_ci95"][1] - a for a, e in zip(accuracy, entries)]]
    fig, (ax_acc, ax_agree) = plt.subplots(1, 2, figsize=(10, 3.2))
    ax_acc.barh(labels, accuracy, xerr=errors, color=["#777", "#4a7fb5", "#d9822b"], capsize=4)
    ax_acc.set_xlim(max(0.0, min(e["accuracy_ci95"][0] for e in entries) - 0.05), 1.0)
    ax_acc.set_title("test accuracy (95% CI)")
    agreement = [e["agreement_with_teacher"] for e in entries[1:]]
    ax_agree.barh(labels[1:], agreement, color=["#4a7fb5", "#d9822b"])
    for row, value in enumerate(agreement):
        ax_agree.text(value, row, f" {value:.3f}", va="center")
    ax_agree.set_xlim(max(0.0, min(agreement) - 0.1), 1.05)
    ax_agree.set_yticks([])
    ax_agree.set_title("agreement with the teacher")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_distill_report(run_dir: Path, metrics: dict[str, Any]) -> None:
    """report.md and report.html (tables and one figure) in the run directory."""
    run_dir = Path(run_dir)
    figure = accuracy_plot(metrics, run_dir / "distillation.png")
    title = f"transferkit distill: {metrics['student']} from a teacher · {metrics['data']}"
    md = [f"# {title}", "", f"**{metrics['verdict']}**", ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p><strong>{html.escape(metrics['verdict'])}</strong></p>"]
    for heading, header, rows in _sections(metrics):
        md += [f"## {heading}", "", markdown_table(header, rows), ""]
        body += [f"<h2>{html.escape(heading)}</h2>", html_table(header, rows)]
    md += [f"![{figure.stem}]({figure.name})", "", *[f"- note: {n}" for n in metrics.get("notes", [])]]
    body += [f'<p><img src="{html.escape(figure.name)}" alt="{html.escape(figure.stem)}"></p>',
             *[f"<p><em>note: {html.escape(n)}</em></p>" for n in metrics.get("notes", [])]]
    write_text_atomic(run_dir / "report.md", "\n".join(md) + "\n")
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    write_text_atomic(run_dir / "report.html", page + "\n")


def distilled_model_card(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The distilled student's README.md: what it is, its teacher, how well it does, how to load it."""
    settings = meta["distillation"]
    lines = [
        f"# {meta['backbone']['source']} distilled from a teacher with transferkit", "",
        f"- task: {meta['task']} ({meta['modality']}), labels: {', '.join(meta['label_names'])}",
        f"- teacher: {settings['teacher']} (artifact sha256 {settings['teacher_sha256'][:16]}…)",
        f"- loss: α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(y, z_s), T = {settings['temperature']}, "
        f"α = {settings['alpha']} (Hinton et al., 2015); student strategy {settings['strategy']}",
        f"- data: {meta['data']['origin']} (split in split.json, seed {meta['data']['seed']}), "
        f"{settings['n_unlabelled']} unlabelled texts added to the transfer set", "",
        "## Results (test split)", "", markdown_table(MODEL_HEADER, model_rows(metrics)), "", metrics["verdict"], "",
        "## Use", "", "```python", "import transferkit", "model = transferkit.load('PATH/TO/model')",
        "model.predict([...])", "```",
    ]
    return "\n".join(lines) + "\n"
