"""PRP's pretext on real footage: playback-rate accuracy on held-out real clips, against
chance and against a random-init encoder (issue 21).

    python scripts/real_footage.py OUT [--clips ../shared/data/clips] [--seeds 0 1 2]
                                   [--train-args "--short-side 72 --crop 64"] [--name tiny]

The real clips (`../shared/data/clips`: UCF101, HMDB51 and other datasets' files, each file
one video) are laid out per seed as a `folder` dataset of three "classes" (ucf101, hmdb51,
other; the pretext never reads them) with an explicit, seeded split *by file*:
30 % of each folder's files are test videos, and pretraining holds 15 % of the rest out for
validation, so no video is in two splits.

For each seed:
- `prp-deploy train --preset tiny --data ROOT --dataset folder --stage pretrain --keep-epochs`;
- every epoch's encoder judged on the test videos (the pretext of `prp-deploy eval`), and the
  epoch each `pretrain.select` rule picks from the validation curve;
- the random-init baseline: the same pretraining with the encoder frozen at its seeded random
  initialisation, so only the rate head (and decoder) learn — what a random encoder's
  features allow, rather than an untrained head's guess (epoch-0.pt, reported too).

Writes OUT/<name>-summary.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from select_study import pick  # the scripts' folder is on sys.path when run as a script

SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
TEST_FRACTION = 0.3


def layout(clips: Path, root: Path, seed: int) -> dict:
    """ROOT/<ucf101|hmdb51|other>/<file> links, and trainlist.txt / testlist.txt split by file."""
    from prp_deploy.data.datasets import VIDEO_EXTENSIONS

    root.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for cls in ("ucf101", "hmdb51", "other"):
        files = sorted(p for p in (clips / cls).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        (root / cls).mkdir(exist_ok=True)
        names = []
        for f in files:
            name = "__".join(f.relative_to(clips / cls).parts)  # other/kinetics400/x.mp4 → other/kinetics400__x.mp4
            link = root / cls / name
            if not link.exists():
                link.symlink_to(f.resolve())
            names.append(f"{cls}/{name}")
        random.Random(f"{seed}/{cls}").shuffle(names)
        n_test = round(TEST_FRACTION * len(names))
        test += sorted(names[:n_test])
        train += sorted(names[n_test:])
    (root / "trainlist.txt").write_text("\n".join(train) + "\n")
    (root / "testlist.txt").write_text("\n".join(test) + "\n")
    return {"train": len(train), "test": len(test)}


def cli(*args: str) -> None:
    print("$ prp-deploy " + " ".join(args), flush=True)
    subprocess.run([str(Path(sys.executable).parent / "prp-deploy"), *args], check=True)


def test_pretext(ckpt: Path, root: Path) -> dict:
    """The pretext part of `prp-deploy eval CKPT --data ROOT --dataset folder` (test videos)."""
    from prp_deploy.training.crosseval import evaluate_on

    out = ckpt.with_suffix(".test.json")
    if not out.exists():
        evaluate_on(ckpt, str(root), "folder", out=out, clips=1)
    return json.loads(out.read_text())["pretext"]


def frozen_encoder_pretrain(root: Path, run_dir: Path, seed: int, train_args: list[str]) -> Path:
    """The tiny preset's pretraining with the encoder frozen at its seeded random init."""
    from prp_deploy.data.tasks import resolve_index
    from prp_deploy.training.common import MetricsLog, StopFlag, setup_runtime
    from prp_deploy.training.config import val_count
    from prp_deploy.training.config_files import build_config
    from prp_deploy.training.loop import run_stage
    from prp_deploy.training.pipeline import fill_cache, prepare_run_dir
    from prp_deploy.training.splits import split_validation
    from prp_deploy.training.stages import pretrain_stage

    if (run_dir / "pretrain" / "last.pt").exists():
        return run_dir / "pretrain" / "last.pt"
    size = dict(zip(train_args[0::2], train_args[1::2]))
    pre = {k: int(size[f"--{k.replace('_', '-')}"]) for k in ("short_side", "crop", "frames") if f"--{k.replace('_', '-')}" in size}
    cfg = build_config("tiny", None, {"data": {"data": str(root), "dataset": "folder", **({"preprocess": pre} if pre else {})}, "seed": seed})
    rt = setup_runtime(cfg.device)
    index = resolve_index(str(root), "folder", 1, print)
    fill_cache(index, cfg, print)
    prepare_run_dir(cfg, run_dir, "pretrain", False, rt)
    train, val = split_validation(index.train, val_count(cfg, index.name, len(index.train)), cfg.seed)
    stage = pretrain_stage(cfg, run_dir, train, val, rt)
    for q in stage.model.encoder.parameters():
        q.requires_grad_(False)  # Adam skips parameters without a gradient: the encoder stays at its init
    metrics = MetricsLog(run_dir)
    try:
        run_stage(stage, rt, metrics, False, StopFlag(), print)
    finally:
        metrics.close()
    return run_dir / "pretrain" / "last.pt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--clips", type=Path, default=SHARED_CLIPS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-args", default="", help="extra `prp-deploy train` flags (sizes only for the baseline: --short-side/--crop/--frames)")
    ap.add_argument("--name", default="tiny")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    extra = shlex.split(a.train_args)
    rows = []
    for seed in a.seeds:
        root = a.out / f"data-seed{seed}"
        counts = layout(a.clips, root, seed)
        run = a.out / f"{a.name}-seed{seed}"
        t0 = time.perf_counter()
        if not (run / "pretrain" / "last.pt").exists():
            cli("train", "--preset", "tiny", "--data", str(root), "--dataset", "folder", "--seed", str(seed), *extra,
                "--stage", "pretrain", "--keep-epochs", "--out", str(run))
        pretrain_s = time.perf_counter() - t0
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        records = [r for r in records if r.get("stage") == "pretrain"]
        epochs = {r["epoch"]: {"val_loss": r["val_loss"], "val_rate_accuracy": r["val_rate_accuracy"],
                               "test": test_pretext(run / "pretrain" / f"epoch-{r['epoch']}.pt", root)} for r in records}
        untrained = test_pretext(run / "pretrain" / "epoch-0.pt", root)
        picks = {rule: pick(records, rule) for rule in ("val_loss", "rate_accuracy", "last")}
        baseline = None
        if not a.no_baseline:
            t1 = time.perf_counter()
            frozen = frozen_encoder_pretrain(root, a.out / f"{a.name}-frozen-random-seed{seed}", seed, extra)
            baseline = {**test_pretext(frozen, root), "seconds": round(time.perf_counter() - t1, 1)}
        row = {"seed": seed, "videos": counts, "pretrain_s": round(pretrain_s, 1), "picks": picks,
               "epochs": epochs, "untrained_epoch0": untrained, "frozen_random_encoder": baseline}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "epochs"}), flush=True)
        (a.out / f"{a.name}-summary.json").write_text(json.dumps({"train_args": a.train_args, "rows": rows}, indent=2))
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    n = max(len(r["epochs"]) for r in rows)
    print("\nTest-clip playback-rate accuracy % per epoch (chance; * val_loss pick, + rate_accuracy pick):")
    print("| seed | chance | untrained (epoch 0) | frozen random encoder | " + " | ".join(f"epoch {e}" for e in range(1, n + 1)) + " |")
    print("|---" * (4 + n) + "|")
    for r in rows:
        cells = []
        for e in range(1, n + 1):
            mark = ("*" if r["picks"]["val_loss"] == e else "") + ("+" if r["picks"]["rate_accuracy"] == e else "")
            cells.append(f"{_epoch(r, e)['test']['rate_accuracy']:.1f}{mark}")
        base = f"{r['frozen_random_encoder']['rate_accuracy']:.1f}" if r["frozen_random_encoder"] else "–"
        print(f"| {r['seed']} | {r['untrained_epoch0']['chance']:.1f} | {r['untrained_epoch0']['rate_accuracy']:.1f} | {base} | "
              + " | ".join(cells) + " |")
    for rule in ("val_loss", "rate_accuracy", "last"):
        accs = [_epoch(r, r["picks"][rule])["test"]["rate_accuracy"] for r in rows]
        print(f"mean test rate accuracy, select {rule}: {statistics.mean(accs):.1f}")


def _epoch(row: dict, e: int) -> dict:
    return row["epochs"][e] if e in row["epochs"] else row["epochs"][str(e)]


if __name__ == "__main__":
    main()
