"""The report of one `transferkit update`: report.md and report.html in its run directory.

It shows the forgetting ledger (rows: versions, columns: data batches, cells: test accuracy),
the backward transfer BWT(v) = mean over earlier batches b of R[v][b] − R[learned(b)][b]
(Lopez-Paz & Ranzato, GEM, NeurIPS 2017) and the forward gain R[v][new] − R[parent][new], and
whether the new version was promoted.
"""

from __future__ import annotations

import html
from pathlib import Path

from ..evaluation.report import html_table
from ..io_utils import write_text_atomic
from .ledger import Ledger

EXPLANATION = ("Cells: test accuracy of each version (row) on the held-out test set of each data batch (column). "
               "Backward transfer: mean change on earlier batches since the version that learned them "
               "(negative = forgetting). Forward gain: accuracy on the new batch minus the parent's.")
STYLE = ("body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:4px 8px}")


def write_update_report(run_dir: Path, title: str, verdict: str, facts: list[tuple[str, str]], ledger: Ledger) -> None:
    """Write report.md and report.html (atomically) into `run_dir`."""
    write_text_atomic(Path(run_dir) / "report.md", _markdown(title, verdict, facts, ledger))
    write_text_atomic(Path(run_dir) / "report.html", _html(title, verdict, facts, ledger))


def _markdown(title: str, verdict: str, facts: list[tuple[str, str]], ledger: Ledger) -> str:
    lines = [f"# {title}", "", f"**{verdict}**", "", *[f"- {name}: {value}" for name, value in facts], "",
             "## Accuracy by version and data batch", "", ledger.table(), "", EXPLANATION]
    return "\n".join(lines) + "\n"


def _html(title: str, verdict: str, facts: list[tuple[str, str]], ledger: Ledger) -> str:
    items = "".join(f"<li>{html.escape(name)}: {html.escape(value)}</li>" for name, value in facts)
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p><strong>{html.escape(verdict)}</strong></p>", f"<ul>{items}</ul>",
             "<h2>Accuracy by version and data batch</h2>",
             html_table(*ledger.rows()), f"<p>{html.escape(EXPLANATION)}</p>"]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
