"""The forgetting ledger: accuracy of every version on every data batch it has seen.

R[v][b] is version v's test accuracy on batch b. With batch b first learned by version l(b):

- backward transfer of v (Lopez-Paz & Ranzato, GEM, NeurIPS 2017):
  BWT(v) = mean over earlier batches b of R[v][b] − R[l(b)][b]  (negative = forgetting);
- forward gain of v on its own new batch n: R[v][n] − R[parent(v)][n]  (what the update bought).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ledger:
    versions: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    learned_in: dict[str, str] = field(default_factory=dict)  # batch -> version that first learned it
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    backward_transfer: dict[str, float | None] = field(default_factory=dict)
    forward_gain: dict[str, float | None] = field(default_factory=dict)

    def add_version(self, version: str, new_batch: str, accuracies: dict[str, float],
                    parent_on_new_batch: float | None) -> None:
        """Record a version that learned `new_batch` and was tested on every batch so far."""
        self.versions.append(version)
        if new_batch not in self.batches:
            self.batches.append(new_batch)
            self.learned_in[new_batch] = version
        self.accuracy[version] = dict(accuracies)
        earlier = [b for b in self.batches if self.learned_in[b] != version]
        deltas = [accuracies[b] - self.accuracy[self.learned_in[b]][b] for b in earlier]
        self.backward_transfer[version] = sum(deltas) / len(deltas) if deltas else None
        self.forward_gain[version] = (accuracies[new_batch] - parent_on_new_batch
                                      if parent_on_new_batch is not None else None)

    def to_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "batches": self.batches, "learned_in": self.learned_in,
                "accuracy": self.accuracy, "backward_transfer": self.backward_transfer,
                "forward_gain": self.forward_gain}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Ledger:
        return cls(**record)

    def relabel(self, names: dict[str, str]) -> Ledger:
        """The same ledger with versions renamed (`names`: old -> new; others kept)."""
        rename = lambda version: names.get(version, version)  # noqa: E731
        return Ledger([rename(v) for v in self.versions], list(self.batches),
                      {b: rename(v) for b, v in self.learned_in.items()},
                      {rename(v): dict(a) for v, a in self.accuracy.items()},
                      {rename(v): x for v, x in self.backward_transfer.items()},
                      {rename(v): x for v, x in self.forward_gain.items()})

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the matrix: rows versions, columns batches, then BWT and gain."""
        header = ["version", *self.batches, "backward transfer", "forward gain"]
        rows = []
        for version in self.versions:
            cells = [f"{self.accuracy[version][b]:.4f}" if b in self.accuracy[version] else "—" for b in self.batches]
            rows.append([version, *cells, _signed(self.backward_transfer[version]), _signed(self.forward_gain[version])])
        return header, rows

    def table(self) -> str:
        """The matrix as a Markdown table."""
        from ..evaluation.report import markdown_table

        return markdown_table(*self.rows())


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"
