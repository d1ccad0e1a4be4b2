"""Which pretraining epoch should finetuning start from? Every candidate rule, measured by
what the encoder is for (issue 21).

    python scripts/select_study.py OUT [--data ROOT --dataset LAYOUT] [--seeds 0 1 2] [--average 3]

For each seed, one pretraining run keeps every epoch (`prp-deploy train --stage pretrain
--keep-epochs`); the candidates are then read off its metrics.jsonl, as `pretrain.select`
would pick them:
- val_loss: the lowest validation loss (the paper's reference code; the first of equals);
- rate_accuracy: the highest validation playback-rate accuracy (the first of equals);
- last: the last epoch;
- average: the mean of the last N epochs' weights (BatchNorm statistics averaged too).
Each distinct encoder is finetuned and evaluated with the CLI a user runs (`prp-deploy train
--init-from EPOCH.pt`: the same seed, split and finetuning as the one-command run, so the
rule that picks epoch N gives that run's numbers), and its pretext is also measured on the
test videos (`prp-deploy eval`). The pretraining is the same run to the bit whichever rule
is chosen, so one pretraining per seed serves every rule.

Writes OUT/summary.json and prints a markdown table. Runs are plain run folders under OUT.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from prp_deploy.training.config import PRETRAIN_SELECT
from prp_deploy.training.loop import mean_weights  # the same mean as pretrain.select average

RULES = ("val_loss", "rate_accuracy", "last", "average")


def cli(*args: str) -> None:
    cmd = [str(Path(sys.executable).parent / "prp-deploy"), *args]
    print("$ prp-deploy " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def pretrain_records(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("stage") == "pretrain"]


def pick(records: list[dict], rule: str) -> int:
    """The epoch `pretrain.select` picks from a metrics.jsonl history: the first strictly best
    (loop.py's rule; "last" is the highest epoch)."""
    key, mode = PRETRAIN_SELECT[rule]
    sign = 1 if mode == "min" else -1
    return min(records, key=lambda r: (sign * r[key], r["epoch"]))["epoch"]


def average_checkpoint(pre: Path, epochs: list[int]) -> Path:
    """The mean of some epochs' weights, written beside them as a checkpoint like theirs."""
    out = pre / f"average-{epochs[0]}-{epochs[-1]}.pt"
    if out.exists():
        return out
    states = [torch.load(pre / f"epoch-{e}.pt", map_location="cpu", weights_only=False) for e in epochs]
    torch.save({**states[-1], "model": mean_weights([s["model"] for s in states]), "averaged_epochs": epochs, "record": None}, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", default=None, help="dataset root (default: the built-in data)")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--average", type=int, default=3, help="the last N epochs averaged (0: no average candidate)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES, help="the candidates to finetune (all by default)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    data = ["--data", a.data, "--dataset", a.dataset] if a.data else []
    base = ["--preset", a.preset, *data]
    rows = []
    for seed in a.seeds:
        run = a.out / f"seed{seed}-pretrain"
        t0 = time.perf_counter()
        if not (run / "pretrain" / "last.pt").exists():
            cli("train", *base, "--seed", str(seed), "--stage", "pretrain", "--keep-epochs", "--out", str(run))
        pretrain_s = time.perf_counter() - t0
        records = pretrain_records(run)
        last = records[-1]["epoch"]
        picks = {rule: pick(records, rule) for rule in RULES if rule != "average" and rule in a.rules}
        ckpts = {rule: run / "pretrain" / f"epoch-{e}.pt" for rule, e in picks.items()}
        if a.average > 1 and "average" in a.rules:
            ckpts["average"] = average_checkpoint(run / "pretrain", list(range(last - a.average + 1, last + 1)))
        done: dict[Path, dict] = {}
        for rule, ckpt in ckpts.items():
            if ckpt not in done:
                ft = a.out / f"seed{seed}-{ckpt.stem}"
                t1 = time.perf_counter()
                if not (ft / "eval.json").exists():
                    cli("train", *base, "--seed", str(seed), "--init-from", str(ckpt), "--out", str(ft))
                finetune_s = time.perf_counter() - t1
                test_json = ft / "eval-test-pretext.json"
                if not test_json.exists():
                    cli("eval", str(ckpt), *data, "--out", str(test_json))
                ev = json.loads((ft / "eval.json").read_text())
                test = json.loads(test_json.read_text())["pretext"] if test_json.exists() else None
                done[ckpt] = {"checkpoint": str(ckpt), "top1": ev["recognition"]["top1"], "retrieval_top1": ev["retrieval"]["top1"],
                              "val_rate_accuracy": ev["pretext"]["rate_accuracy"], "val_rate_chance": ev["pretext"]["chance"],
                              "test_rate_accuracy": test["rate_accuracy"] if test else None, "test_rate_chance": test["chance"] if test else None,
                              "finetune_s": round(finetune_s, 1)}
            epoch = picks.get(rule, f"{last - a.average + 1}-{last}")
            rows.append({"seed": seed, "rule": rule, "epoch": epoch, "pretrain_s": round(pretrain_s, 1), **done[ckpt]})
            print(json.dumps(rows[-1]), flush=True)
        (a.out / "summary.json").write_text(json.dumps({"data": a.data, "dataset": a.dataset, "preset": a.preset, "seeds": a.seeds,
                                                         "average": a.average, "rows": rows}, indent=2))
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print("\n| seed | rule | epoch | finetuned top-1 | retrieval top-1 | rate acc val (chance) | rate acc test (chance) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        test = f"{r['test_rate_accuracy']:.1f} ({r['test_rate_chance']:.1f})" if r["test_rate_accuracy"] is not None else "–"
        print(f"| {r['seed']} | {r['rule']} | {r['epoch']} | {r['top1']:.1f} | {r['retrieval_top1']:.1f} | "
              f"{r['val_rate_accuracy']:.1f} ({r['val_rate_chance']:.1f}) | {test} |")
    for rule in RULES:
        rs = [r for r in rows if r["rule"] == rule]
        if rs:
            m = lambda k: statistics.mean(r[k] for r in rs if r[k] is not None) if any(r[k] is not None for r in rs) else float("nan")  # noqa: E731
            print(f"| mean | {rule} | | {m('top1'):.1f} | {m('retrieval_top1'):.1f} | {m('val_rate_accuracy'):.1f} | {m('test_rate_accuracy'):.1f} |")


if __name__ == "__main__":
    main()
