"""The loss curve as a PNG: training loss per logged step, validation loss per evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PLOT_FILE = "loss_curve.png"


def plot_loss(train: Sequence[Sequence[float]], val: Sequence[Sequence[float]], path: Path, title: str) -> Path:
    """Draw [step, loss] pairs to `path` with matplotlib's Agg backend (no display needed); return the path."""
    import matplotlib

    matplotlib.use("Agg")  # headless: a training box or a Space has no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        if train:
            ax.plot([p[0] for p in train], [p[1] for p in train], label="train", color="tab:blue")
        if val:
            ax.plot([p[0] for p in val], [p[1] for p in val], "o-", label="validation", color="tab:orange")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (assistant tokens)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)
