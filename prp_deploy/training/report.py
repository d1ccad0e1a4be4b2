"""What a run shows its user: curves.png and the one-line eval summary."""

from __future__ import annotations

from pathlib import Path

from ..reports.plots import curves_figure
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
