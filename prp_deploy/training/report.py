"""What a run shows its user: curves.png and the one-line eval summary."""

from __future__ import annotations

from pathlib import Path

from .common import MetricsLog


def plot_curves(run_dir: Path) -> Path | None:
    """curves.png: loss (log scale, so one early spike does not flatten the rest) and accuracy
    per epoch for each stage, with the chance level of each accuracy as a dashed line."""
    records = MetricsLog(run_dir, enabled=False).read()
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = curves_figure(records)
    out = run_dir / "curves.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


# What each chance line is: the majority label's share among the clips the curve is measured
# on (validation), which differs from the test set's chance in eval.json.
CHANCE_LINES = {"val_rate_chance": "chance {:.1f} % (majority rate, val clips)",
                "val_chance": "chance {:.1f} % (majority class, val videos)"}


def curves_figure(records: list[dict]):
    """The figure of plot_curves, for a list of metrics.jsonl records."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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


def eval_summary(r: dict) -> str:
    parts = []
    if r["pretext"].get("rate_accuracy") is not None:
        parts.append(f"rate acc {r['pretext']['rate_accuracy']:.1f}% (chance {r['pretext']['chance']:.1f}%)")
    if r.get("recognition"):
        rec = r["recognition"]
        parts.append(f"recognition top1 {rec['top1']:.1f}% (chance {rec['chance']:.1f}%, majority class of the test videos) top5 {rec['top5']:.1f}%")
    ret = r["retrieval"]
    parts.append(f"retrieval top1 {ret['top1']:.1f}% (chance {ret['chance']['top1']:.1f}%) "
                 + " ".join(f"@{k[3:]} {v:.1f}%" for k, v in ret.items() if k.startswith("top") and k != "top1"))
    return "eval: " + "; ".join(parts)
