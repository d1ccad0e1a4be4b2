"""Long footage through the data layer: `data prepare` peak memory and frame-counting time at
3 / 30 / 60 minutes, side by side in one run.

The videos are 320x240 H.264 at 25 fps from ffmpeg's testsrc2 (made once into --work; long
files live only here, never in the suite). Each measurement runs in its own process, whose
peak resident memory (ru_maxrss) is read when it ends:
- `prepare`: `prp-deploy data prepare --workers 1` of a one-video folder dataset (+ a 1 s
  second class, which the folder layout needs), into an empty cache;
- `prepare, frames held`: the write before issue 38 (every resized frame kept in a list,
  then encoded), for comparison, at the lengths given by --held (it needs ~70 kB a frame);
- `count`: `count_packets` (demux, no decode: what probe does now) against counting by
  decoding every frame with OpenCV (what it did), and `prp-deploy data info` as a whole.

    python benchmarks/bench_video.py [--minutes 3,30,60] [--held 3,30] [--work /tmp/bench_video]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2

from prp_deploy import __version__

MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, r.returncode)
sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:])
"""

HELD = """
import sys, cv2, numpy as np
from prp_deploy.data.preprocess import resize_rgb
from prp_deploy.data.video import iter_frames
frames = [resize_rgb(f, 128) for f in iter_frames(sys.argv[1])]
blobs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
open(sys.argv[2], "wb").write(b"".join(blobs))
"""


def make_video(path: Path, minutes: float) -> Path:
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", str(minutes * 60),
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def measured(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak MB) of one command in its own process."""
    r = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, env=env)
    seconds, peak, rc = r.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr}")
    return float(seconds), float(peak)


def count_by_decoding(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="3,30,60")
    ap.add_argument("--held", default="3,30", help="lengths at which to measure the old write too")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_video"))
    args = ap.parse_args()
    import os

    from prp_deploy.data.video import count_packets

    minutes = [float(m) for m in args.minutes.split(",")]
    held = {float(m) for m in args.held.split(",") if m}
    rows = []
    for m in minutes:
        root = args.work / f"ds-{m:g}min"
        for cls in ("Long", "Short"):
            (root / cls).mkdir(parents=True, exist_ok=True)
        video = make_video(root / "Long" / "long.mp4", m)
        make_video(root / "Short" / "short.mp4", 1 / 60)
        env = {**os.environ, "PRP_DEPLOY_CACHE": str(args.work / f"cache-{m:g}-{time.time_ns()}")}
        prep_s, prep_mb = measured([sys.executable, "-m", "prp_deploy", "data", "prepare", "--data", str(root), "--dataset", "folder", "--workers", "1"], env)
        info_s, _ = measured([sys.executable, "-m", "prp_deploy", "data", "info", "--data", str(root), "--dataset", "folder"],
                             {**env, "PRP_DEPLOY_CACHE": env["PRP_DEPLOY_CACHE"] + "-info"})
        t = time.perf_counter()
        packets = count_packets(str(video))
        demux_s = time.perf_counter() - t
        t = time.perf_counter()
        decoded = count_by_decoding(video)
        decode_s = time.perf_counter() - t
        row = {"minutes": m, "frames_decoded": decoded, "frames_counted": packets, "prepare_s": round(prep_s, 1),
               "prepare_peak_mb": round(prep_mb), "info_s": round(info_s, 2), "count_demux_s": round(demux_s, 2),
               "count_decode_s": round(decode_s, 1)}
        if m in held:
            held_s, held_mb = measured([sys.executable, "-c", HELD, str(video), str(args.work / "held.bin")])
            row.update(held_s=round(held_s, 1), held_peak_mb=round(held_mb))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nprp-deploy {__version__}, PyAV {av.__version__}, OpenCV {cv2.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()} {os.cpu_count()} cores")
    print("| minutes | frames (decoded / counted) | prepare peak MB | frames held, peak MB | prepare s | data info s | count: demux s / decode s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        held_col = f"{r['held_peak_mb']} ({r['held_s']} s)" if "held_peak_mb" in r else "-"
        print(f"| {r['minutes']:g} | {r['frames_decoded']} / {r['frames_counted']} | {r['prepare_peak_mb']} | {held_col} | "
              f"{r['prepare_s']} | {r['info_s']} | {r['count_demux_s']} / {r['count_decode_s']} |")


if __name__ == "__main__":
    main()
