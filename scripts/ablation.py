"""The paper's ablation in miniature on the built-in synthetic dataset (CPU).

Runs `prp-deploy train` for objectives none / dp / gp (with and without motion attention)
/ dgp over 3 seeds at one shared budget (--config, default docs/ablation.yaml), and DP
pretraining for S = {1,2}, {1,2,4}, {1,2,4,8}; prints the mean ± sd tables and writes
them with the exact commands to OUT/summary.json (docs/results.md quotes them).

    python scripts/ablation.py [--out runs/ablation] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROWS = [
    ("none", ["--objective", "none"]),
    ("dp", ["--objective", "dp"]),
    ("gp (no MA)", ["--objective", "gp", "--no-motion-attention"]),
    ("gp (MA)", ["--objective", "gp", "--motion-attention"]),
    ("dgp (MA)", ["--objective", "dgp"]),
]
INTERVALS = ["1,2", "1,2,4"]  # {1,2,4,8} is the dp row above


def run(args: list[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "prp_deploy", "train", *args]
    t0 = time.time()
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    print(f"{time.time() - t0:6.0f}s rc={r.returncode} prp-deploy train {' '.join(args)}", flush=True)
    if r.returncode != 0:
        sys.exit(f"failed, see {log}")


def mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "–"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", type=Path, default=Path("docs/ablation.yaml"), help="The budget every run shares.")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    commands, table = [], {}
    for name, flags in ROWS:
        for seed in args.seeds:
            out = args.out / f"{name.split()[0]}{'-noma' if 'no MA' in name else ''}-s{seed}"
            cli = ["--config", str(args.config), *flags, "--seed", str(seed), "--out", str(out)]
            commands.append("prp-deploy train " + " ".join(cli))
            if not (out / "eval.json").exists():
                run(cli, args.out / f"{out.name}.log")
            table.setdefault(name, []).append(json.loads((out / "eval.json").read_text()))
    pretext = {}
    for s in INTERVALS:
        for seed in args.seeds:
            out = args.out / f"dp-S{s.replace(',', '')}-s{seed}"
            cli = ["--config", str(args.config), "--objective", "dp", "--intervals", s, "--finetune-epochs", "0", "--seed", str(seed), "--out", str(out)]
            commands.append("prp-deploy train " + " ".join(cli))
            if not (out / "eval.json").exists():
                run(cli, args.out / f"{out.name}.log")
            pretext.setdefault(s, []).append(json.loads((out / "eval.json").read_text())["pretext"])
    pretext["1,2,4,8"] = [e["pretext"] for e in table["dp"]]
    lines = ["| objective | finetuned top-1 % | top-5 % | retrieval top-1 % | top-5 % | top-10 % | rate acc % (chance) |", "|---|---|---|---|---|---|---|"]
    for name, evs in table.items():
        rate = [e["pretext"]["rate_accuracy"] for e in evs if e["pretext"]["rate_accuracy"] is not None]
        chance = evs[0]["pretext"]["chance"]
        lines.append(f"| {name} | {mean_sd([e['recognition']['top1'] for e in evs])} | {mean_sd([e['recognition']['top5'] for e in evs])} | "
                     f"{mean_sd([e['retrieval']['top1'] for e in evs])} | {mean_sd([e['retrieval']['top5'] for e in evs])} | "
                     f"{mean_sd([e['retrieval']['top10'] for e in evs])} | {mean_sd(rate) + f' ({chance:.0f})' if rate else '–'} |")
    lines += ["", "| S | DP rate accuracy % | chance % |", "|---|---|---|"]
    for s in ["1,2", "1,2,4", "1,2,4,8"]:
        lines.append(f"| {{{s}}} | {mean_sd([p['rate_accuracy'] for p in pretext[s]])} | {pretext[s][0]['chance']:.0f} |")
    ev0 = table["none"][0]
    report = {"tables": "\n".join(lines), "commands": "\n".join(commands), "versions": ev0["versions"], "config": ev0["config"]}
    (args.out / "summary.json").write_text(json.dumps(report, indent=2))
    print(report["tables"])


if __name__ == "__main__":
    main()
