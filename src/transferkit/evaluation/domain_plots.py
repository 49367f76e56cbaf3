"""Feature-space pictures for domain adaptation: source vs target, before and after."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402


def domain_scatter(panels: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """One 2-D PCA panel per model: source (blue) and target (orange) test features.

    Each panel's PCA is fitted on that model's own features, so a panel shows how far apart the
    two domains lie in that model's feature space (overlap = aligned features).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), squeeze=False)
    for ax, (title, (source, target)) in zip(axes[0], panels.items()):
        points = PCA(n_components=2, random_state=0).fit_transform(np.concatenate([source, target]))
        ax.scatter(*points[: len(source)].T, s=6, alpha=0.5, label="source")
        ax.scatter(*points[len(source):].T, s=6, alpha=0.5, label="target")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
