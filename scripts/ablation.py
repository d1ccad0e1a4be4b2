"""The paper's Tables 1 and 2 in miniature, on the built-in synthetic dataset, plus the
learning curves of the supervised baseline.

Every run is `prp-deploy train` with the tiny preset as it ships (the README's default
command) and only the flags named below, so each row differs from the default run in one
thing. Results go to OUT/summary.json (tables, commands, versions) and OUT/curves.png;
docs/results.md quotes them.

    python scripts/ablation.py [--out runs/ablation] [--seeds 0 1 2] [--jobs 1] [--device cpu]
                               [--parts objectives,labels,intervals,curves]

Parts:
- objectives: none / dp / gp (no MA) / gp (MA) / dgp at the default label budget (Table 2);
- labels: none and dgp with every label (--label-fraction 1);
- intervals: DP pretext accuracy for S = {1,2}, {1,2,4} ({1,2,4,8} is the dp row) (Table 1);
- curves: `--objective none --label-fraction 1` at growing finetuning budgets, for the tiny
  preset and with one of its choices undone at a time (the measurements behind them).
A run whose eval.json exists is not run again, so an interrupted ablation resumes.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OBJECTIVES = [
    ("none", ["--objective", "none"]),
    ("dp", ["--objective", "dp"]),
    ("gp (no MA)", ["--objective", "gp", "--no-motion-attention"]),
    ("gp (MA)", ["--objective", "gp", "--motion-attention"]),
    ("dgp (MA)", ["--objective", "dgp"]),
]
ALL_LABELS = [("none, every label", ["--objective", "none", "--label-fraction", "1"]),
              ("dgp, every label", ["--objective", "dgp", "--label-fraction", "1"])]
INTERVALS = ["1,2", "1,2,4"]  # {1,2,4,8} is the dp row
# Learning curves of the supervised baseline: finetuning epochs of the tiny preset's size.
CURVE_EPOCHS = [1, 4, 16]
CURVE_VARIANTS = [
    ("tiny preset", []),
    ("no clip-mean centring", ["--no-subtract-mean"]),
    ("no centring, SGD lr 0.05 step schedule (the old tiny preset)", ["--no-subtract-mean", "--config", "OLD_OPT"]),
]
OLD_OPT_YAML = "schema_version: 1\npreset: tiny\nfinetune: {optimizer: sgd, lr: 0.05, schedule: step, step_size: 1000, weight_decay: 0.0005}\n"


def mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def run_one(job: tuple[list[str], Path], device: str) -> tuple[Path, float, int]:
    args, out = job
    if (out / "eval.json").exists():
        return out, 0.0, 0
    cmd = [sys.executable, "-m", "prp_deploy", "train", *args, "--device", device, "--out", str(out)]
    t0 = time.time()
    with open(out.with_suffix(".log"), "w") as log:
        r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    return out, time.time() - t0, r.returncode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="Runs at once (each uses --workers 2 data processes).")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--parts", default="objectives,labels,intervals,curves")
    ap.add_argument("--summarise-only", action="store_true", help="Tabulate the runs already in OUT; run nothing.")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    old_opt = args.out / "old_finetune_optimiser.yaml"
    old_opt.write_text(OLD_OPT_YAML)

    jobs: dict[str, list[tuple[list[str], Path]]] = {}

    def add(row: str, flags: list[str], name: str) -> None:
        flags = [str(old_opt) if f == "OLD_OPT" else f for f in flags]
        jobs.setdefault(row, []).append((flags, args.out / name))

    for seed in args.seeds:
        if "objectives" in parts:
            for row, flags in OBJECTIVES:
                add(row, [*flags, "--seed", str(seed)], f"{row.replace(' ', '').replace('(', '-').replace(')', '')}-s{seed}")
        if "labels" in parts:
            for row, flags in ALL_LABELS:
                add(row, [*flags, "--seed", str(seed)], f"{row.split(',')[0]}-all-labels-s{seed}")
        if "intervals" in parts:
            for s in INTERVALS:
                add(f"S={{{s}}}", ["--objective", "dp", "--intervals", s, "--finetune-epochs", "0", "--seed", str(seed)],
                    f"dp-S{s.replace(',', '')}-s{seed}")
    if "curves" in parts:
        for v, (variant, flags) in enumerate(CURVE_VARIANTS):
            for epochs in CURVE_EPOCHS:
                add(f"curve {v} {epochs}", ["--objective", "none", "--label-fraction", "1", "--finetune-epochs", str(epochs), *flags,
                                            "--seed", str(args.seeds[0])], f"curve{v}-e{epochs}")

    if args.summarise_only:
        print(summarise(jobs, args)["tables"])
        return
    # Make the dataset and its frame cache once, before parallel runs race to do it.
    from prp_deploy.data.tasks import resolve_index
    from prp_deploy.training.config_files import build_config
    from prp_deploy.training.pipeline import fill_cache

    fill_cache(resolve_index(None, None, 1), build_config("tiny", None, {}), print)

    flat = [j for row in jobs.values() for j in row]
    t0 = time.time()
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for out, secs, rc in pool.map(lambda j: run_one(j, args.device), flat):
            print(f"{time.time() - t0:6.0f}s  {secs:5.0f}s rc={rc}  {out.name}", flush=True)
    report = summarise(jobs, args)
    print(report["tables"])


def load(out: Path) -> dict | None:
    p = out / "eval.json"
    return json.loads(p.read_text()) if p.exists() else None


def summarise(jobs: dict, args) -> dict:
    lines = ["| objective | finetuned top-1 % | top-5 % | retrieval top-1 % | top-5 % | rate acc % (chance) | runs |",
             "|---|---|---|---|---|---|---|"]
    results = {}
    for row, row_jobs in jobs.items():
        loaded = [(out, load(out)) for _, out in row_jobs]  # each eval.json read once
        evs = [e for _, e in loaded if e]
        results[row] = [{"out": str(out), "eval": {k: e[k] for k in ("pretext", "recognition", "retrieval", "labels")} if e else None}
                        for out, e in loaded]
        if not evs or row.startswith("curve") or row.startswith("S="):
            continue
        rate = [e["pretext"]["rate_accuracy"] for e in evs if e["pretext"].get("rate_accuracy") is not None]
        chance = [e["pretext"]["chance"] for e in evs if e["pretext"].get("chance") is not None]
        lines.append(f"| {row} | {mean_sd([e['recognition']['top1'] for e in evs])} | {mean_sd([e['recognition']['top5'] for e in evs])} | "
                     f"{mean_sd([e['retrieval']['top1'] for e in evs])} | {mean_sd([e['retrieval']['top5'] for e in evs])} | "
                     f"{mean_sd(rate) + f' ({statistics.mean(chance):.1f})' if rate else '–'} | {len(evs)} |")
    # Above chance, normalised: (acc − chance) / (100 − chance), 0 at chance and 1 when perfect,
    # so sets of 2, 3 and 4 rates compare on one scale (raw accuracy falls with |S| by chance alone).
    lines += ["", "| S | DP rate accuracy % | chance % (majority label) | (acc − chance) / (100 − chance) |", "|---|---|---|---|"]
    for s in [*INTERVALS, "1,2,4,8"]:
        row = f"S={{{s}}}" if s != "1,2,4,8" else "dp"
        evs = [e for e in (load(out) for _, out in jobs.get(row, [])) if e]
        if evs:
            acc = [e["pretext"]["rate_accuracy"] for e in evs]
            ch = [e["pretext"]["chance"] for e in evs]
            lines.append(f"| {{{s}}} | {mean_sd(acc)} | {mean_sd(ch)} | {statistics.mean((a - c) / (100 - c) for a, c in zip(acc, ch)):.2f} |")
    curves = {}
    for v, (variant, _) in enumerate(CURVE_VARIANTS):
        pts = []
        for epochs in CURVE_EPOCHS:
            e = load(args.out / f"curve{v}-e{epochs}")
            if e:
                f = e["config"]["finetune"]
                pts.append((epochs * -(-f["clips_per_epoch"] // f["batch_size"]), e["recognition"]["top1"]))
        if pts:
            curves[variant] = pts
    if curves:
        lines += ["", "| finetuning steps (batch 32) | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
        for i in range(max(len(p) for p in curves.values())):
            cells = [f"{p[i][1]:.1f}" if i < len(p) else "–" for p in curves.values()]
            lines.append(f"| {next(iter(curves.values()))[i][0]} | " + " | ".join(cells) + " |")
        plot_curves(curves, args.out / "curves.png")
    commands = [f"prp-deploy train {' '.join(flags)} --out {out}" for row in jobs.values() for flags, out in row]
    any_eval = next((load(out) for row in jobs.values() for _, out in row if load(out)), None)
    report = {"tables": "\n".join(lines), "commands": "\n".join(commands), "results": results, "device": args.device,
              "versions": any_eval["versions"] if any_eval else None, "config": any_eval["config"] if any_eval else None}
    (args.out / "summary.json").write_text(json.dumps(report, indent=2))
    return report


def plot_curves(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.axhline(12.5, color="grey", linestyle="--", label="chance (8 classes)")
    ax.set_xscale("log")
    ax.set_xlabel("finetuning SGD steps (batch 32), random init, every label")
    ax.set_ylabel("test top-1 %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
