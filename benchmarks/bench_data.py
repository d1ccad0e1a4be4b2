"""Pretraining-sample throughput: on-the-fly decoding vs the frame cache, side by side in one run.

Each sample is a PRP pretraining draw at s ∈ {1, 2, 4, 8}: the 16·s rate-1 frames (resized
by the rule, cropped) that input, slow-down target and motion attention come from. Every
source serves the *same* draws (same videos, rates and starts), in one process (one core).

    python benchmarks/bench_data.py [--videos DIR] [--samples 200] [--full]

--full also builds the whole training item (input, r=2 target, motion attention).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from prp_deploy import __version__
from prp_deploy.data.cache import FrameCache
from prp_deploy.data.clips import CachedFrames, DecodedFrames, PretrainClips
from prp_deploy.data.datasets import Video
from prp_deploy.data.preprocess import resize_rgb
from prp_deploy.data.sampling import choose_rate, padded_range

DEFAULT_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips" / "ucf101"


class AuthorsWay:
    """The reference's way: open the video, read (decode + convert) every frame from the start, resize."""

    short_side = 128

    def __init__(self, counts: DecodedFrames):
        self.counts = counts

    def num_frames(self, path):
        return self.counts.num_frames(path)

    def read(self, path, indices):
        cap = cv2.VideoCapture(str(path))
        frames = []
        for _ in range(int(max(indices)) + 1):
            ok, f = cap.read()
            if not ok:
                break
            frames.append(resize_rgb(f, self.short_side))
        cap.release()
        return np.stack([frames[i] for i in indices])


def draws(videos, source, n, seed=0, clip_len=16, rates=(1, 2, 4, 8)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = videos[int(rng.integers(len(videos)))]
        nf = source.num_frames(v.path)
        c = choose_rate(nf, rates, clip_len, None, rng)
        out.append((v, padded_range(c.start, c.span, nf), c.rate))
    return out


def time_spans(source, plan, crop=112) -> float:
    t0 = time.perf_counter()
    for v, idx, _ in plan:
        frames = source.read(v.path, idx)
        frames[:, :crop, :crop].copy()
    return len(plan) / (time.perf_counter() - t0)


def time_full(videos, source, n) -> float:
    ds = PretrainClips(videos, source, rec_rate=2, motion=True, seed=0)
    t0 = time.perf_counter()
    for i in range(n):
        ds[i % len(videos)]
    return n / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # per core: one decode thread, like one DataLoader worker
    files = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in (".avi", ".mp4"))
    if not files:
        sys.exit(f"no .avi/.mp4 videos in {args.videos}")
    videos = [Video(p, 0) for p in files]
    decoded = DecodedFrames(128)
    with tempfile.TemporaryDirectory() as tmp:
        caches = {fmt: FrameCache(128, fmt, root=Path(tmp) / fmt) for fmt in ("jpeg", "raw")}
        t0 = time.perf_counter()
        for c in caches.values():
            for v in videos:
                c.write(v.path)
        prep_s = time.perf_counter() - t0
        plan = draws(videos, decoded, args.samples)
        frames_per_sample = np.mean([len(idx) for _, idx, _ in plan])
        print(f"prp-deploy {__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
        print(f"{len(videos)} videos from {args.videos}; {len(plan)} draws, s in {{1,2,4,8}}, mean {frames_per_sample:.0f} rate-1 frames per sample; one core")
        print(f"cache prepare (both formats): {prep_s:.1f} s")
        time_spans(decoded, plan[:10])  # warm the OS file cache for every source alike
        rows = [("authors' way (read all from start)", time_spans(AuthorsWay(decoded), plan)),
                ("on-the-fly decode (grab + retrieve)", time_spans(decoded, plan))]
        for fmt, c in caches.items():
            rows.append((f"frame cache, {fmt}", time_spans(CachedFrames(c), plan)))
        base = rows[1][1]
        print(f"\n{'sample frames (16*s per sample)':40s} {'samples/s':>10s} {'x on-the-fly':>13s}")
        for name, rate in rows:
            print(f"{name:40s} {rate:10.1f} {rate / base:13.2f}")
        if args.full:
            n = max(20, args.samples // 4)
            full = [("on-the-fly decode", time_full(videos, decoded, n))]
            full += [(f"frame cache, {fmt}", time_full(videos, CachedFrames(c), n)) for fmt, c in caches.items()]
            print(f"\n{'full item (input + r=2 target + motion)':40s} {'samples/s':>10s} {'x on-the-fly':>13s}")
            for name, rate in full:
                print(f"{name:40s} {rate:10.1f} {rate / full[0][1]:13.2f}")


if __name__ == "__main__":
    main()
