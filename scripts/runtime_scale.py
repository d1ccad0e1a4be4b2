"""Runtime at deployment scale, measured (the numbers in docs/results.md):

1. folder: ≥ 200 short synthetic videos plus bad files (empty, truncated, not a video) in
   one `prp-deploy run FOLDER --out DIR --max-open K` process: sources ok / failed with
   reasons, exit status, decoders open at most, engine starts, and the process's peak RSS
   when the 50th and the last source finished (from DIR/sources.jsonl, in finish order);
2. segments: videos made by concatenating built-in test videos of different classes with
   known cut points, through `--segments` with a trained export: each cut's distance to
   the nearest segment boundary against the window stride, and segments that match no
   part of the truth.

    python scripts/runtime_scale.py --model runs/NAME/export [--videos 216] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from prp_deploy.data.datasets import ucf101_index
from prp_deploy.data.synth import SynthSpec, default_dataset, write_synthetic
from prp_deploy.data.video import iter_frames
from prp_deploy.rundir import newest_export, versions
from prp_deploy.runtime.model_info import read_model_info


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True)


def folder_run(model: Path, work: Path, videos: int, max_open: int) -> dict:
    groups = 3
    per_group = -(-videos // (8 * groups))
    data = write_synthetic(work / "synth", SynthSpec(classes=8, groups=groups, clips_per_group=per_group, min_frames=24, max_frames=48, seed=1))
    folder = work / "folder"
    files = sorted((data / "UCF-101").rglob("*.avi"))
    for f in files:
        (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / f.parent.name / f.name).write_bytes(f.read_bytes())
    bad = folder / "bad"
    bad.mkdir()
    (bad / "empty.avi").write_bytes(b"")
    (bad / "notvideo.mp4").write_text("not a video\n")
    long = max(files, key=lambda p: p.stat().st_size)
    (bad / "truncated.avi").write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    out = work / "out"
    t0 = time.perf_counter()
    r = cli("run", str(folder), "--model", str(model), "--out", str(out), "--max-open", str(max_open), "--quiet")
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    finished = [json.loads(l) for l in (out / "sources.jsonl").read_text().splitlines()]
    t = summary["totals"]
    failed = {Path(row["source"]).name: row["reason"] for row in summary["sources"] if row["status"] == "failed"}
    return {"sources": t["sources"], "good_videos": len(files), "ok": t["ok"], "failed": failed, "exit_status": r.returncode,
            "last_line": r.stderr.strip().splitlines()[-1], "max_open": max_open, "max_open_decoders": t["max_open_decoders"],
            "engine_starts": t["engine_starts"], "windows": t["windows"], "windows_per_s": t["windows_per_s"], "process_wall_s": wall,
            "peak_rss_mb_at_50": finished[49]["peak_rss_mb"], "peak_rss_mb_at_200": finished[199]["peak_rss_mb"],
            "peak_rss_mb_at_end": finished[-1]["peak_rss_mb"]}


def concatenated(work: Path, n_videos: int, parts: int, seed: int) -> list[tuple[Path, list[tuple[str, int, int]]]]:
    """Videos of `parts` built-in test videos of different classes back to back: (path, [(class, start, end)])."""
    root = default_dataset()
    test = ucf101_index(root, 1).test
    by_class: dict[str, list[Path]] = {}
    for v in test:
        by_class.setdefault(v.path.parent.name, []).append(v.path)
    rng = random.Random(seed)
    made = []
    for i in range(n_videos):
        classes = rng.sample(sorted(by_class), parts)
        frames, truth = [], []
        for c in classes:
            clip = list(iter_frames(rng.choice(by_class[c])))
            truth.append((c, len(frames), len(frames) + len(clip)))
            frames += clip
        path = work / "cuts" / f"cuts{i:02d}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
        for f in frames:
            writer.write(f)
        writer.release()
        made.append((path, truth))
    return made


def segments_run(model: Path, work: Path, n_videos: int, parts: int, seed: int, flags: list[str]) -> dict:
    made = concatenated(work, n_videos, parts, seed)
    out = work / "segments"
    r = cli("run", *[str(p) for p, _ in made], "--model", str(model), "--out", str(out), "--segments", "--quiet", *flags)
    if r.returncode != 0:
        raise SystemExit(f"segments run failed: {r.stderr.strip().splitlines()[-1]}")
    info = read_model_info(model)
    stride = (info.preprocess.frames // 2) * info.sample_rate
    distances, spurious, missed, found_total, correct_label = [], 0, 0, 0, 0
    for path, truth in made:
        segs = [json.loads(l) for l in (out / f"{path.stem}.segments.jsonl").read_text().splitlines()]
        found_total += len(segs)
        for s in segs:  # a segment is spurious when most of it lies in a part of another class
            overlap = {c: max(0, min(e, s["end_frame"]) - max(b, s["start_frame"])) for c, b, e in truth}
            best = max(overlap, key=overlap.get)
            spurious += best != s["label"] or overlap[best] < (s["end_frame"] - s["start_frame"]) / 2
        for c, b, e in truth:
            own = [s for s in segs if s["label"] == c]
            correct_label += bool(own)
        for (c1, _, cut), (c2, _, _) in zip(truth, truth[1:]):
            ends = [s["end_frame"] for s in segs if s["label"] == c1] + [s["start_frame"] for s in segs if s["label"] == c2]
            if not ends:
                missed += 1
                continue
            distances.append(min(abs(x - cut) for x in ends))
    d = np.array(distances)
    cuts = n_videos * (parts - 1)
    return {"flags": " ".join(flags), "videos": n_videos, "parts_per_video": parts, "cuts": cuts, "stride_frames": stride, "segments": found_total,
            "parts_with_a_segment_of_their_class": correct_label, "parts": n_videos * parts, "spurious_segments": int(spurious),
            "cuts_without_a_boundary": missed, "cuts_within_one_stride": int((d <= stride).sum()),
            "boundary_error_frames_median": float(np.median(d)) if len(d) else None, "boundary_error_frames_max": float(d.max()) if len(d) else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="A trained export (default: the newest under runs/).")
    ap.add_argument("--videos", type=int, default=216)
    ap.add_argument("--max-open", type=int, default=4)
    ap.add_argument("--cut-videos", type=int, default=20)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--segment-flags", action="append", default=None,
                    help="`run` flags for a segments row, e.g. '--smooth 5' (repeat for several rows; default: the defaults)")
    ap.add_argument("--skip-folder", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    model = args.model or newest_export()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [segments_run(model, Path(tmp) / f"seg{i}", args.cut_videos, args.parts, args.seed, f.split())
                for i, f in enumerate(args.segment_flags or [""])]
        result = {"model": str(model), "folder": None if args.skip_folder else folder_run(model, Path(tmp), args.videos, args.max_open),
                  "segments": rows,
                  "seed": args.seed, "versions": versions()}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
