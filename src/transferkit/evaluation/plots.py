"""Report figures (matplotlib, headless Agg backend), saved as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Training loss and every validation metric against optimizer steps."""
    if not history:
        return None
    steps = [row["step"] for row in history]
    metrics = [k for k in history[0] if k.startswith("val_") and k != "val_loss"]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(steps, [row["train_loss"] for row in history], marker="o", label="train loss")
    ax_loss.plot(steps, [row["val_loss"] for row in history], marker="o", label="validation loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("loss")
    ax_loss.legend()
    for key in metrics:
        ax_metric.plot(steps, [row[key] for row in history], marker="o", label=key[4:])
    ax_metric.set_xlabel("step")
    ax_metric.set_title("validation")
    ax_metric.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrices(matrices: dict[str, list[list[int]]], label_names: list[str], path: Path) -> Path | None:
    """Side-by-side confusion matrices (e.g. BEFORE and AFTER), counts annotated."""
    if not matrices or len(label_names) > 30:
        return None
    size = max(3.2, 0.45 * len(label_names) + 2)
    fig, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices), size), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        ax.imshow(matrix, cmap="Blues")
        ax.set_title(title)
        ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
        ax.set_yticks(range(len(label_names)), label_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
