"""Long files through the frame-exact layer: sequential reading, a clip anywhere in the file,
and `run --start/--end`, side by side in one run.

- `sequential`: frames/s over the first --frames frames, OpenCV's `VideoCapture.read` against
  `VideoFile.frames()` (BGR, the runtime's and training's path), alternated --repeats times.
- `clip`: one training-sized clip (16 frames, every 2nd) at minute 0, the middle and 5 minutes
  before the end (each 123 frames past a keyframe), through `read_frames` (a seek) and, for comparison, OpenCV reading
  forward from frame 0 (what `read_frames` did before); with the frames each decoded.
- `run` (with --model): `prp-deploy run FILE --start S --end S+10` at 0 and in the last
  minute (1740 s of 30 min), wall time of the whole command, the best of two; with --check,
  the last-minute windows are compared with the whole file's run at the same frames.

Videos are bench_video.py's (320x240 H.264, 25 fps, a keyframe every 250 frames), made here
when missing.

    python benchmarks/bench_seek.py [--minutes 30,60] [--model runs/NAME/export] [--work /tmp/bench_video]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video import make_video  # noqa: E402

from prp_deploy import __version__  # noqa: E402
from prp_deploy.data.video_file import VideoFile, frame_index  # noqa: E402


def opencv_fps(path: Path, n: int) -> float:
    cap, t = cv2.VideoCapture(str(path)), time.perf_counter()
    for _ in range(n):
        cap.read()
    cap.release()
    return n / (time.perf_counter() - t)


def layer_fps(path: Path, n: int) -> float:
    t = time.perf_counter()
    with VideoFile(path) as video:
        for _ in video.frames(0, n):
            pass
    return n / (time.perf_counter() - t)


def clip_by_seek(path: Path, first: int) -> tuple[float, int]:
    t = time.perf_counter()
    with VideoFile(path) as video:
        video.read(range(first, first + 32, 2))
        return time.perf_counter() - t, video.frames_decoded


def clip_by_opencv(path: Path, first: int) -> float:
    cap, t = cv2.VideoCapture(str(path)), time.perf_counter()
    for i in range(first + 32):
        cap.grab()
        if i >= first and (i - first) % 2 == 0:
            cap.retrieve()
    cap.release()
    return time.perf_counter() - t


def run_span(path: Path, model: Path, start: float | None, out: str = os.devnull) -> float:
    t = time.perf_counter()
    span = ["--start", str(start), "--end", str(start + 10)] if start is not None else []
    subprocess.run([sys.executable, "-m", "prp_deploy", "run", str(path), "--model", str(model), *span, "--out", out, "-q"],
                   check=True, capture_output=True)
    return time.perf_counter() - t


def same_as_whole_run(path: Path, model: Path, start: float, work: Path) -> dict:
    """The span's windows against the whole file's at the same start frames."""
    part, whole = work / "part.jsonl", work / "whole.jsonl"
    run_span(path, model, start, str(part))
    whole_s = run_span(path, model, None, str(whole))
    rows = {r["start_frame"]: r for r in map(json.loads, whole.read_text().splitlines())}
    got = [json.loads(line) for line in part.read_text().splitlines()]
    worst = max(abs(a["score"] - b["score"]) for r in got for a, b in zip(r["top"], rows[r["start_frame"]]["top"]))
    return {"windows": len(got), "in_span": all(start <= r["start_s"] and r["end_s"] < start + 10 for r in got),
            "same_times": all((r["start_s"], r["end_s"]) == (rows[r["start_frame"]]["start_s"], rows[r["start_frame"]]["end_s"]) for r in got),
            "same_labels": all([a["label"] for a in r["top"]] == [a["label"] for a in rows[r["start_frame"]]["top"]] for r in got),
            "max_score_diff": worst, "whole_run_s": round(whole_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="30,60")
    ap.add_argument("--frames", type=int, default=3000, help="frames read in each sequential measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", type=Path, default=None, help="an export folder: also time run --start/--end")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_video"))
    ap.add_argument("--opencv-clip", action="store_true", help="also time OpenCV reading forward to each clip (slow)")
    ap.add_argument("--check", action="store_true", help="with --model: compare the span's windows with a whole run's, on the first length (slow)")
    args = ap.parse_args()
    lengths = [float(x) for x in args.minutes.split(",")]
    for m in lengths:
        folder = args.work / f"ds-{m:g}min" / "Long"
        folder.mkdir(parents=True, exist_ok=True)
        video = make_video(folder / "long.mp4", m)
        t = time.perf_counter()
        frames = len(frame_index(str(video)))
        row = {"minutes": m, "frames": frames, "index_s": round(time.perf_counter() - t, 2)}
        ocv, ours = [], []
        for _ in range(args.repeats):
            ocv.append(opencv_fps(video, args.frames))
            ours.append(layer_fps(video, args.frames))
        row["sequential_fps"] = {"opencv": round(statistics.median(ocv)), "layer": round(statistics.median(ours)),
                                 "layer_over_opencv": round(statistics.median(ours) / statistics.median(ocv), 2)}
        clips = {}
        for at_min in (0, m / 2 - 1, m - 5):
            first = int(at_min * 60 * 25) + 123  # mid-GOP (keyframes every 250 frames): the seek decodes up to it
            seconds, decoded = clip_by_seek(video, first)
            clips[f"{at_min:g} min"] = {"seek_ms": round(seconds * 1e3, 1), "decoded": decoded,
                                        **({"opencv_forward_s": round(clip_by_opencv(video, first), 2)} if args.opencv_clip else {})}
        row["clip"] = clips
        if args.model:
            last = m * 60 - 60
            runs = {0.0: [], last: []}
            for _ in range(2):
                for start in runs:
                    runs[start].append(run_span(video, args.model, start))
            row["run_10s"] = {f"--start {k:g}": round(min(v), 2) for k, v in runs.items()}
            row["run_10s"]["last_over_first"] = round(min(runs[last]) / min(runs[0.0]), 2)
            if args.check and m == lengths[0]:  # the first length only: a whole run of it is minutes
                row["check"] = same_as_whole_run(video, args.model, last, args.work)
        print(json.dumps(row), flush=True)
    print(f"\nprp-deploy {__version__}, PyAV {av.__version__}, OpenCV {cv2.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()} {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
