"""What `prp-deploy data ...` does, as plain functions the CLI and tests call."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2

from ..errors import PRPError, VideoError, UsageError
from .cache import FrameCache
from .datasets import Video, VideoIndex, load_index
from .synth import SynthSpec, default_dataset, default_dataset_root
from .video import probe


def resolve_index(data: str | os.PathLike | None, dataset: str | None, split: int = 1, say: Callable[[str], None] = lambda s: None) -> VideoIndex:
    """The index of `data` (a dataset root), or of the built-in synthetic dataset when `data` is None."""
    if data is None:
        if dataset not in (None, "ucf101"):
            raise UsageError(f"--dataset {dataset} needs --data ROOT (the built-in default dataset is in the ucf101 layout)")
        spec = SynthSpec()
        if not (default_dataset_root(spec) / "synth.json").exists():
            from tqdm import tqdm

            say(f"generating the built-in synthetic dataset ({spec.classes * spec.groups * spec.clips_per_group} videos, once)")
            with tqdm(total=spec.classes * spec.groups * spec.clips_per_group, desc="built-in dataset", unit="video", disable=None,
                      leave=False, file=sys.stderr) as bar:
                default_dataset(spec, lambda: bar.update(1))
        root = default_dataset(spec)
        say(f"using the built-in synthetic dataset at {root}")
        return load_index(root, "ucf101", split)
    if dataset is None:
        raise UsageError("--data needs --dataset ucf101|hmdb51|folder")
    return load_index(Path(data), dataset, split)


def all_videos(index: VideoIndex) -> list[Video]:
    return list(index.train) + list(index.test)


@dataclass
class DatasetReport:
    index: VideoIndex
    frames: dict[str, int] = field(default_factory=dict)  # path → decoded frame count
    fps: dict[str, float] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # path → why

    def summary(self) -> dict:
        counts = sorted(self.frames.values())
        per_class = [0] * self.index.num_classes
        for v in all_videos(self.index):
            per_class[v.label] += 1
        return {
            "dataset": self.index.name,
            "root": str(self.index.root),
            "split": self.index.split,
            "classes": len(self.index.classes),
            "train_videos": len(self.index.train),
            "test_videos": len(self.index.test),
            "videos_per_class_min": min(per_class),
            "videos_per_class_max": max(per_class),
            "per_class": {c: {"train": sum(v.label == i for v in self.index.train), "test": sum(v.label == i for v in self.index.test),
                              "unreadable": sum(v.label == i and str(v.path) in self.unreadable for v in all_videos(self.index))}
                          for i, c in enumerate(self.index.classes)},
            "readable_videos": len(counts),
            "unreadable_videos": len(self.unreadable),
            "frames_total": sum(counts),
            "frames_min": counts[0] if counts else 0,
            "frames_median": counts[len(counts) // 2] if counts else 0,
            "frames_max": counts[-1] if counts else 0,
            "notes": list(self.index.notes),
        }


def probe_one(path: str) -> tuple[str, int | None, float, str | None]:
    cv2.setNumThreads(1)  # one decode per worker process; OpenCV's own threads would oversubscribe
    try:
        info = probe(path)
        if info.frame_count == 0:
            return path, None, info.fps, "no frame decodes"
        return path, info.frame_count, info.fps, None
    except VideoError as e:
        return path, None, 0.0, str(e).removeprefix(f"{path}: ")


def _pool(workers: int):
    return cf.ProcessPoolExecutor(max_workers=workers) if workers > 1 else None


def _map(fn, items, workers: int, progress):
    pool = _pool(workers)
    try:
        results = pool.map(fn, items, chunksize=4) if pool else map(fn, items)
        for r in results:
            progress()
            yield r
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)


def describe(index: VideoIndex, workers: int = 1, progress: Callable[[], None] = lambda: None) -> DatasetReport:
    """Decode every video of the split once (counts are cached) and report frames and unreadable files."""
    report = DatasetReport(index)
    for path, n, fps, why in _map(probe_one, [str(v.path) for v in all_videos(index)], workers, progress):
        if why is None:
            report.frames[path], report.fps[path] = n, fps
        else:
            report.unreadable[path] = why
    return report


@dataclass
class PrepareReport:
    cache_root: Path
    written: int = 0
    already: int = 0
    frames: int = 0
    bytes: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    truncated: dict[str, str] = field(default_factory=dict)  # path → where decoding stopped (what decoded is cached)


def _prepare_one(args) -> tuple[str, int, bool, str | None, str | None]:
    cache, path = args
    cv2.setNumThreads(1)
    try:
        if cache.has(path):
            return path, cache.num_frames(path), False, None, None
        n = cache.write(path)
        return path, n, True, None, _stopped_short(path, n)
    except VideoError as e:
        return path, 0, False, str(e).removeprefix(f"{path}: "), None


def _stopped_short(path: str, decoded: int) -> str | None:
    """Where a file that decodes well short of its container's count stopped, as a time."""
    info = probe(path)  # the count cache's row that the write just made
    claimed = info.container_frame_count
    if claimed <= 0 or decoded >= 0.9 * claimed - 1:
        return None
    at = f" (at {_clock(decoded / info.fps)} of {_clock(claimed / info.fps)})" if info.fps else ""
    return f"decoding stopped at frame {decoded} of the {claimed} its container claims{at}: the {decoded} that decoded are cached"


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m // 60)}:{int(m % 60):02d}:{s:04.1f}" if m >= 60 else f"{int(m)}:{s:04.1f}"


def prepare(index: VideoIndex, cache: FrameCache, workers: int = 1, progress: Callable[[], None] = lambda: None) -> PrepareReport:
    """Fill the frame cache for every video of the split; videos already cached are kept."""
    report = PrepareReport(cache.root)
    jobs = [(cache, str(v.path)) for v in all_videos(index)]
    for path, n, wrote, why, short in _map(_prepare_one, jobs, workers, progress):
        if why is not None:
            report.failed[path] = why
            continue
        if short is not None:
            report.truncated[path] = short
        report.written += wrote
        report.already += not wrote
        report.frames += n
        report.bytes += cache.path_for(path).stat().st_size
    return report
