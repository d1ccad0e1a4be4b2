"""The run's pictures (matplotlib, Agg): curves, confusion matrices, histograms, each a figure
that `plot_curves` saves as curves.png and the report inlines as PNG data."""

from __future__ import annotations

import base64
import io


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def data_uri(fig, dpi: int = 80) -> str:
    """A figure as a PNG data: URI (the report is one self-contained file), the figure closed."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# What each chance line is: the majority label's share among the clips the curve is measured
# on (validation), which differs from the test set's chance in eval.json.
CHANCE_LINES = {"val_rate_chance": "chance {:.1f} % (majority rate, val clips)",
                "val_chance": "chance {:.1f} % (majority class, val videos)"}


def curves_figure(records: list[dict]):
    """The figure of plot_curves, for a list of metrics.jsonl records."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    stages = [s for s in ("pretrain", "finetune") if any(r["stage"] == s for r in records)]
    fig, axes = plt.subplots(2, len(stages), figsize=(5 * len(stages), 6), squeeze=False)
    for col, s in enumerate(stages):
        rs = [r for r in records if r["stage"] == s]
        ep = [r["epoch"] for r in rs]
        axes[0, col].plot(ep, [r["train_loss"] for r in rs], label="train loss")
        axes[0, col].plot(ep, [r["val_loss"] for r in rs], label="val loss")
        axes[0, col].set_title(s)
        axes[0, col].set_yscale("log")
        axes[0, col].set_ylabel("loss (log scale)")
        axes[0, col].legend()
        for key, label in (("train_accuracy", "train acc %"), ("val_rate_accuracy", "val rate acc %"), ("val_accuracy", "val acc %")):
            if key in rs[0]:
                axes[1, col].plot(ep, [r[key] for r in rs], label=label)
        for key, text in CHANCE_LINES.items():
            if key in rs[-1]:
                axes[1, col].axhline(rs[-1][key], color="grey", linestyle="--", label=text.format(rs[-1][key]))
        for ax in axes[:, col]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        if not axes[1, col].lines:  # GP alone has no accuracy to plot
            axes[1, col].set_visible(False)
            continue
        axes[1, col].set_ylim(0, 100)
        axes[1, col].set_ylabel("accuracy %")
        axes[1, col].set_xlabel("epoch")
        axes[1, col].legend()
    fig.tight_layout()
    return fig


def lr_figure(records: list[dict]):
    """The learning rate per epoch, each stage a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for s in ("pretrain", "finetune"):
        rs = [r for r in records if r["stage"] == s and "lr" in r]
        if rs:
            ax.plot([r["epoch"] for r in rs], [r["lr"] for r in rs], marker="o", label=s)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate (end of epoch)")
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(counts: list[list[int]], names: list[str], title: str, xlabel: str = "predicted", ylabel: str = "true"):
    """A confusion matrix, counts written in each cell, rows normalised for the colour."""
    import numpy as np

    plt = _plt()
    c = np.asarray(counts, float)
    share = c / np.maximum(c.sum(1, keepdims=True), 1)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(c[i, j]), ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def cosine_figure(cosines: list[float], title: str):
    """Per-clip distance from FP32 (1 − cosine): cosines of 0.9999997 are unreadable as ticks."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 2.4))
    gap = [max(0.0, 1.0 - c) for c in cosines]
    if max(gap, default=0.0) == 0.0:
        ax.text(0.5, 0.5, f"all {len(gap)} clips: cosine 1.0000000", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    else:
        ax.hist(gap, bins=30, color="#4a7ab5")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("1 − cosine to FP32")
    ax.set_ylabel("clips")
    fig.tight_layout()
    return fig
