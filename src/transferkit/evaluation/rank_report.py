"""Reports of `transferkit rank` and `transferkit auto` (report.md + report.html, one plot).

The ranking table (score and rank per metric, feature-extraction time), how far the scores agree
with each other, and for `auto` what fine-tuning reached, Kendall τ / weighted τ of every score
against that accuracy, and a score-vs-accuracy plot per score.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io_utils import write_text_atomic  # noqa: E402
from .report import html_table, markdown_table  # noqa: E402

if TYPE_CHECKING:
    from ..rank.select import Ranking

Section = tuple[str, list[str], list[list[str]]]
STYLE = ("body{font-family:sans-serif;max-width:1080px;margin:2em auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:4px 8px}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def ranking_rows(ranking: Ranking) -> tuple[list[str], list[list[str]]]:
    """Header and rows: model, 'score (rank)' per metric, feature-extraction seconds."""
    header = ["model", *[f"{m} (rank)" for m in ranking.metrics], "features s"]
    rows = []
    for c in ranking.candidates:
        cells = [f"{c.scores[m]:.4f} ({c.ranks[m]})" if m in c.scores else "n/a" for m in ranking.metrics]
        rows.append([c.model, *cells, f"{c.seconds:.1f}" + (" (cache)" if c.cached else "")])
    return header, rows


def agreement_rows(ranking: Ranking) -> tuple[list[str], list[list[str]]]:
    """Kendall τ between every two scores over the candidates (a symmetric matrix)."""
    metrics = ranking.metrics
    rows = [[a, *("1" if a == b else _num(ranking.agreement[a].get(b)) for b in metrics)] for a in metrics]
    return ["Kendall τ", *metrics], rows


def ranking_sections(ranking: Ranking) -> list[Section]:
    sections: list[Section] = [
        ("Task", ["", ""], [["data", ranking.data], ["ranking sample", f"{ranking.sample} training examples"],
                            ["classes", str(len(ranking.label_names))], ["seed", str(ranking.seed)]]),
        ("Ranking (higher is better; rank 1 = best)", *ranking_rows(ranking)),
    ]
    if len(ranking.candidates) >= 2 and len(ranking.metrics) >= 2:
        sections.append((f"Agreement between scores (n = {len(ranking.candidates)} candidates)",
                         *agreement_rows(ranking)))
    return sections


def auto_sections(summary: dict[str, Any]) -> list[Section]:
    """Fine-tuned candidates, and τ of every score against the accuracy reached."""
    results = [[r["model"], str(r["selection_rank"]), _num(r["val_accuracy"]), _num(r["accuracy"]),
                _num(r["macro_f1"]), f"{r['train_seconds']:.1f}", r["run_dir"]] for r in summary["candidates"]]
    taus = [[name, _num(tau), _num(summary["weighted_tau"][name]), str(summary["tau_n"][name]),
             "yes" if summary["score_picked_most_accurate"][name] else "no"]
            for name, tau in summary["kendall_tau"].items()]
    return [
        (f"Fine-tuned: top {summary['n_fine_tuned']} of {summary['n_candidates']} by {summary['select_by']} "
         f"({summary['strategy']}, {summary['epochs']} epoch(s))",
         ["model", f"{summary['select_by']} rank", "val accuracy", "test accuracy", "test macro-F1", "train s",
          "run"], results),
        ("Was the ranking right? Each score vs the test accuracy reached",
         ["score", "Kendall τ", "weighted τ", "n", "its top pick was the most accurate"], taus),
    ]


def auto_notes(summary: dict[str, Any]) -> list[str]:
    """How to read τ here: few candidates, and only the ones the selecting score preferred."""
    n = summary["n_fine_tuned"]
    notes = [f"n = {n} fine-tuned candidates: without ties, Kendall τ over {n} models takes one of only "
             f"{n * (n - 1) // 2 + 1} values" + (" (−1 or +1)" if n == 2 else "") + "; it is a coarse check of "
             "this ranking, not a measurement of the score's quality",
             f"the best model ({summary['best']}) was chosen by validation accuracy; τ uses test accuracy"]
    if summary["n_fine_tuned"] < summary["n_candidates"]:
        notes.append(f"only the top {n} by {summary['select_by']} were fine-tuned, so τ is measured on candidates "
                     f"{summary['select_by']} already preferred (a selection effect)")
    return notes


def score_accuracy_plot(summary: dict[str, Any], path: Path) -> Path | None:
    """One panel per score: score (x) against test accuracy reached (y), points named by model."""
    names = list(summary["kendall_tau"])
    if not names:
        return None
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        having = [r for r in summary["candidates"] if name in r["scores"]]
        xs, ys = [r["scores"][name] for r in having], [r["accuracy"] for r in having]
        ax.scatter(xs, ys)
        for r, x, y in zip(having, xs, ys):
            ax.annotate(r["model"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{name}: τ {_num(summary['kendall_tau'][name])}", fontsize=9)
        ax.margins(x=0.3, y=0.15)  # room for the model names
        ax.tick_params(labelsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel("test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_rank_report(out_dir: Path, ranking: Ranking) -> None:
    """report.md and report.html of a ranking."""
    _write(Path(out_dir), f"transferkit rank: {ranking.data}", ranking_sections(ranking), ranking.notes, [], [])


def write_auto_report(run_dir: Path, ranking: Ranking, summary: dict[str, Any]) -> None:
    """report.md and report.html of an auto run, with the score-vs-accuracy plot."""
    figure = score_accuracy_plot(summary, Path(run_dir) / "score_vs_accuracy.png")
    headline = [f"Best: {summary['best']} (chosen by validation accuracy); its artifact is model/."]
    _write(Path(run_dir), f"transferkit auto: {ranking.data}", [*ranking_sections(ranking), *auto_sections(summary)],
           auto_notes(summary) + ranking.notes, [figure] if figure else [], headline)


def _write(directory: Path, title: str, sections: list[Section], notes: list[str], figures: list[Path],
           headline: list[str]) -> None:
    md = [f"# {title}", "", *[f"**{line}**" for line in headline], ""]
    body = [f"<h1>{html.escape(title)}</h1>", *[f"<p><strong>{html.escape(line)}</strong></p>" for line in headline]]
    for heading, header, rows in sections:
        md += [f"## {heading}", "", markdown_table(header, rows), ""]
        body += [f"<h2>{html.escape(heading)}</h2>", html_table(header, rows)]
    md += [f"![{f.stem}]({f.name})" for f in figures] + ["", *[f"- note: {n}" for n in notes]]
    body += [f'<p><img src="{html.escape(f.name)}" alt="{html.escape(f.stem)}"></p>' for f in figures]
    body += [f"<p><em>note: {html.escape(n)}</em></p>" for n in notes]
    write_text_atomic(directory / "report.md", "\n".join(md) + "\n")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    write_text_atomic(directory / "report.html", page)
