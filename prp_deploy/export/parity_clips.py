"""Real clips for export: parity runs every artefact on clips of the run's *test* videos,
INT8 calibration reads the run's *training* videos (never the ones parity judges on);
both through the runtime's preprocessing and spread over the classes."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..data.clips import EvalClips
from ..data.datasets import VIDEO_EXTENSIONS, Video, VideoIndex, load_index
from ..data.preprocess import Preprocess
from ..data.tasks import resolve_index
from ..errors import PRPError
from .torch_backend import LoadedModel


def run_index(model: LoadedModel, say) -> VideoIndex:
    """The dataset split the checkpoint was trained on, else (not readable here) the built-in one."""
    d = model.state.get("config", {}).get("data", {})
    try:
        if d.get("data"):
            index = load_index(Path(d["data"]), d["dataset"], d.get("split", 1))
            say(f"export clips from the run's dataset: {index.root} ({index.name} split {index.split})")
            return index
        return resolve_index(None, None, d.get("split", 1), say)
    except PRPError as e:
        say(f"the run's dataset is not readable here ({e}); using the built-in synthetic dataset")
        return resolve_index(None, None, 1, say)


def parity_videos(explicit: list[Path], index: VideoIndex | None) -> list[Video]:
    """The files given, else the test-set videos of `index` (the run's)."""
    if not explicit:
        return list(index.test)
    files = []
    for p in map(Path, explicit):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.exists():
            files.append(p)
        else:
            raise PRPError(f"--parity-videos: {p}: no such file or folder")
    if not files:
        raise PRPError("--parity-videos: no video files found")
    return [Video(f, 0) for f in files]


def by_class_round_robin(videos: list[Video], seed: int = 0) -> list[Video]:
    """The videos in an order that takes one of each class in turn (shuffled within a class,
    seeded): the first k clips then cover every class instead of the first few."""
    rng = np.random.default_rng(seed)
    per_class: dict[int, list[Video]] = defaultdict(list)
    for v in videos:
        per_class[v.label].append(v)
    queues = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(per_class.items())]
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def clips_per_video(n: int, videos: list, most: int) -> int:
    """How many clips to take from each video so that `n` come from `videos` (at most `most` each)."""
    return max(1, min(most, math.ceil(n / max(1, len(videos)))))


def real_clips(videos: list[Video], spec: Preprocess, n: int, per_video: int | None = None) -> tuple[np.ndarray, list[str]]:
    """n clips (N, 3, T, crop, crop) spread over the videos and their classes, through the runtime's preprocessing."""
    ordered = by_class_round_robin(videos)
    per_video = per_video or clips_per_video(n, ordered, 4)
    ds = EvalClips(ordered, spec, per_video)
    clips, used, have = [], [], 0
    for i in range(len(ordered)):
        if have >= n:
            break
        item = ds[i]
        if item is None:
            continue
        clips.append(item["clips"][: n - have])
        have += len(clips[-1])
        used.append(str(ordered[i].path))
    if not clips:
        raise PRPError("no clip could be decoded from the chosen videos")
    return np.concatenate(clips), used


def run_batched(backend, clips: np.ndarray) -> dict[str, np.ndarray]:
    """`backend` on `clips` in batches its engine accepts (a TensorRT profile has a maximum)."""
    step = getattr(backend, "max_batch", None) or len(clips)
    parts = [backend.run(clips[i : i + step]) for i in range(0, len(clips), step)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def video_predictions(backends: dict, videos: list[Video], spec: Preprocess, clips: int = 10) -> dict[str, np.ndarray]:
    """Each backend's video-level prediction (logits averaged over `clips` clips a video, the
    paper's protocol) and the true labels ("labels"), for the videos that decode; each video
    is decoded once for all of the backends."""
    ds = EvalClips(videos, spec, clips)
    preds: dict[str, list[int]] = {name: [] for name in backends}
    labels = []
    for i in range(len(videos)):
        item = ds[i]
        if item is None:
            continue
        for name, backend in backends.items():
            preds[name].append(int(run_batched(backend, item["clips"])["logits"].mean(0).argmax()))
        labels.append(item["label"])
    if not labels:
        raise PRPError("no video could be decoded for the INT8 accuracy check")
    return {name: np.array(p) for name, p in preds.items()} | {"labels": np.array(labels)}


def video_top1(backends: dict, videos: list[Video], spec: Preprocess, clips: int = 10) -> dict[str, float]:
    """Video-level top-1 % of each backend, and "videos": how many were judged."""
    p = video_predictions(backends, videos, spec, clips)
    return {name: 100.0 * float((p[name] == p["labels"]).mean()) for name in backends} | {"videos": len(p["labels"])}
