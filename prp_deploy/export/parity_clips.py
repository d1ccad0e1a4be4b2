"""The clips parity runs every artefact on: real video through the runtime's preprocessing,
from the run's test set (never its training videos), else the videos given."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.clips import EvalClips
from ..data.datasets import VIDEO_EXTENSIONS, Video, load_index
from ..data.preprocess import Preprocess
from ..data.tasks import resolve_index
from ..errors import PRPError
from .torch_backend import LoadedModel


def parity_videos(model: LoadedModel, explicit: list[Path], say) -> list[Video]:
    """The run's test-set videos, else the files given, else the built-in synthetic set."""
    if explicit:
        files = []
        for p in explicit:
            p = Path(p)
            if p.is_dir():
                files += sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_EXTENSIONS)
            elif p.exists():
                files.append(p)
            else:
                raise PRPError(f"--parity-videos: {p}: no such file or folder")
        if not files:
            raise PRPError("--parity-videos: no video files found")
        return [Video(f, 0) for f in files]
    d = model.state.get("config", {}).get("data", {})
    try:
        if d.get("data"):
            index = load_index(Path(d["data"]), d["dataset"], d.get("split", 1))
            say(f"parity clips from the run's test set: {index.root} ({index.name} split {index.split})")
        else:
            index = resolve_index(None, None, d.get("split", 1), say)
        return list(index.test)
    except PRPError as e:
        say(f"the run's dataset is not readable here ({e}); using the built-in synthetic dataset")
        return list(resolve_index(None, None, 1, say).test)


def real_clips(videos: list[Video], spec: Preprocess, n: int) -> tuple[np.ndarray, list[str]]:
    """n clips (N, 3, T, crop, crop) spread over the videos, through the runtime's preprocessing."""
    per_video = max(1, min(4, math.ceil(n / max(1, len(videos)))))
    clips, used = [], []
    ds = EvalClips(videos, spec, per_video)
    for i in range(len(videos)):
        if sum(len(c) for c in clips) >= n:
            break
        item = ds[i]
        if item is None:
            continue
        clips.append(item["clips"])
        used.append(str(videos[i].path))
    if not clips:
        raise PRPError("no parity clip could be decoded from the chosen videos")
    return np.concatenate(clips)[:n], used
