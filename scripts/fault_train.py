"""Kill-anywhere training: SIGKILL a small `prp-deploy train` at random instants, resume it each
time, and check that nothing is lost.

Checks, after every kill: every checkpoint in the run folder loads (atomic writes), and each
stage's best.pt never gets worse. At the end: finetune/best.pt, finetune/last.pt and the
evaluation in eval.json are identical (weights bit for bit, on CPU) to an uninterrupted run
with the same seed.

    python scripts/fault_train.py --kills 20                  # docs/results.md
    python scripts/fault_train.py --kills 3 --json out.json   # the short version the tests run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.rundir import load_checkpoint


def train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--dataset", "ucf101", "--backbone", "r3d", "--width", "0.125", "--frames", "8", "--crop", "32",
            "--short-side", "40", "--workers", "0", "--pretrain-epochs", "3", "--finetune-epochs", "3", "--batch-size", "6",
            "--objective", "dgp", "--intervals", "1,2,4", "--labels-per-class", "3", "--device", "cpu", "--seed", "0", "--out", str(out)]


def launch(data: Path, out: Path, env: dict) -> subprocess.Popen:
    resume = ["--resume"] if (out / "config.yaml").exists() else []  # killed before config.yaml: start afresh
    return subprocess.Popen([sys.executable, "-m", "prp_deploy", *train_args(data, out), *resume], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def best_scores(run: Path) -> dict:
    """Each stage's best validation score, as its best.pt records it."""
    return {stage: load_checkpoint(run / stage / "best.pt")["best"] for stage in ("pretrain", "finetune") if (run / stage / "best.pt").exists()}


def check_readable(run: Path) -> int:
    """Every checkpoint loads; returns how many there are."""
    found = list(run.glob("*/*.pt"))
    for ckpt in found:
        load_checkpoint(ckpt)  # raises on a damaged file
    return len(found)


def not_worse(stage: str, before, after) -> bool:
    if before is None:
        return True
    return after <= before if stage == "pretrain" else after >= before  # val loss down, val accuracy up


def evaluation(run: Path) -> dict:
    e = json.loads((run / "eval.json").read_text())
    return {k: e[k] for k in ("pretext", "retrieval", "recognition", "labels")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill instants")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prp-fault-"))
    env = {**os.environ, "PRP_DEPLOY_CACHE": str(work / "cache")}
    data = write_synthetic(work / "data", SynthSpec(classes=3, groups=3, clips_per_group=3, width=64, height=48, min_frames=40, max_frames=60))

    t0 = time.perf_counter()
    ref = subprocess.run([sys.executable, "-m", "prp_deploy", *train_args(data, work / "reference")], env=env, capture_output=True, text=True)
    straight_s = time.perf_counter() - t0
    if ref.returncode != 0:
        print(ref.stderr[-2000:], file=sys.stderr)
        return 2

    rng = random.Random(args.seed)
    kills, rounds, log = 0, [], []
    while kills < args.kills:  # a round: one run folder killed until it finishes, then compared with the reference
        run, best_before = work / f"killed-{len(rounds)}", {}
        while True:
            proc = launch(data, run, env)
            delay = rng.uniform(0.3, straight_s)  # anywhere: start-up, a step, a checkpoint write, validation, evaluation
            try:
                proc.wait(timeout=delay if kills < args.kills else None)  # the kills done, the last resume runs to the end
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                kills += 1
            err = proc.stderr.read()
            proc.stderr.close()
            if proc.returncode == 0:
                break  # the run finished before this kill came
            if proc.returncode > 0:
                print(f"train failed (exit {proc.returncode}) in {run}:\n{err[-2000:]}", file=sys.stderr)
                return 2
            scores = best_scores(run)
            log.append({"round": len(rounds), "kill": kills, "after_s": round(delay, 2), "checkpoints": check_readable(run), "best": scores})
            if not all(not_worse(st, best_before.get(st), v) for st, v in scores.items()):
                print(f"best.pt got worse after kill {kills}: {best_before} → {scores}", file=sys.stderr)
                return 1
            best_before = scores
        same = {}
        for name in ("finetune/best.pt", "finetune/last.pt"):
            a, b = load_checkpoint(work / "reference" / name)["model"], load_checkpoint(run / name)["model"]
            same[name] = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        same["eval.json"] = evaluation(work / "reference") == evaluation(run)
        rounds.append(same)
    result = {"kills": kills, "rounds": len(rounds), "straight_run_s": round(straight_s, 1), "identical": rounds,
              "all_identical": all(all(r.values()) for r in rounds), "checkpoints_unreadable": 0, "log": log, "work": str(work)}
    print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["all_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
