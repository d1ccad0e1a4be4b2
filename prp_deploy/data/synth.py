"""The built-in default dataset: small, real .avi files in the UCF101 layout.

Classes differ only in how one object moves; its shape, colour, size, speed and start
are random per video, and each group (UCF101's gXX, one "actor") shares a background
with static distractors. No single frame tells the class, so a model must use time.
`prp-deploy train` with no `--data` uses it; the tests and benchmarks do too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import PRPError
from ..paths import cache_dir

MOTIONS = ("SlideRight", "SlideLeft", "SlideUp", "SlideDown", "Orbit", "Bounce", "Grow", "Shrink")
SYNTH_VERSION = 2  # bump when the generator's output changes, so caches regenerate


@dataclass(frozen=True)
class SynthSpec:
    classes: int = 8
    groups: int = 6  # split k tests groups 2k-1 and 2k (of 6), like UCF101's grouped splits
    clips_per_group: int = 4
    width: int = 160
    height: int = 120
    min_frames: int = 60
    max_frames: int = 160
    fps: float = 25.0
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.classes <= len(MOTIONS):
            raise PRPError(f"classes must be in 2..{len(MOTIONS)}, got {self.classes}")
        if self.groups < 3 or self.groups % 3:
            raise PRPError(f"groups must be a positive multiple of 3 (three splits), got {self.groups}")
        if self.clips_per_group < 1 or self.min_frames < 2 or self.max_frames < self.min_frames:
            raise PRPError("clips_per_group >= 1 and 2 <= min_frames <= max_frames are required")
        if self.width < 32 or self.height < 32:
            raise PRPError(f"frames must be at least 32x32, got {self.width}x{self.height}")

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": SYNTH_VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth colour field plus soft blobs and a few static shapes (distractors), uint8 BGR."""
    low = rng.uniform(30, 220, size=(3, 4, 3)).astype(np.float32)
    bg = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(rng.normal(0, 25, size=(h, w, 3)).astype(np.float32), (0, 0), 3)
    bg = np.clip(bg + noise, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        r = int(rng.integers(3, max(4, min(w, h) // 8)))
        if rng.random() < 0.5:
            cv2.circle(bg, c, r, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(bg, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), colour, -1, cv2.LINE_AA)
    return bg


def _draw(frame: np.ndarray, shape: int, centre: tuple[float, float], size: float, colour, angle: float) -> None:
    cx, cy, s = centre[0], centre[1], max(2.0, size)
    if shape == 0:
        cv2.circle(frame, (int(round(cx * 4)), int(round(cy * 4))), int(round(s * 4)), colour, -1, cv2.LINE_AA, shift=2)
        return
    k = 4 if shape == 1 else 3
    pts = [(cx + s * math.cos(angle + 2 * math.pi * i / k), cy + s * math.sin(angle + 2 * math.pi * i / k)) for i in range(k)]
    cv2.fillPoly(frame, [np.round(np.array(pts) * 4).astype(np.int32)], colour, cv2.LINE_AA, shift=2)


def _render(motion: str, rng: np.random.Generator, bg: np.ndarray, n: int) -> list[np.ndarray]:
    h, w = bg.shape[:2]
    shape = int(rng.integers(3))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    size = rng.uniform(0.1, 0.18) * min(w, h)
    # Pixels per frame: 0.8-3.2 % of the short side, so the motion stays visible after the
    # tiny preset's downscale to a 40-pixel short side (0.3-1.3 px per frame there).
    speed = rng.uniform(0.8, 3.2) * min(w, h) / 100
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    angle0 = rng.uniform(0, 2 * math.pi)
    radius = rng.uniform(0.15, 0.3) * min(w, h)
    period = rng.uniform(16, 40)
    direction = 1 if rng.random() < 0.5 else -1
    frames = []
    for t in range(n):
        x, y, s = x0, y0, size
        if motion == "SlideRight":
            x = (x0 + speed * t) % w
        elif motion == "SlideLeft":
            x = (x0 - speed * t) % w
        elif motion == "SlideDown":
            y = (y0 + speed * t) % h
        elif motion == "SlideUp":
            y = (y0 - speed * t) % h
        elif motion == "Orbit":
            a = angle0 + direction * speed * t / radius
            x, y = w / 2 + radius * math.cos(a), h / 2 + radius * math.sin(a)
        elif motion == "Bounce":
            x = w / 2 + radius * math.sin(angle0 + 2 * math.pi * t / period)
        elif motion in ("Grow", "Shrink"):
            # Sawtooth between small and large so any window shows one direction of change.
            phase = ((angle0 / (2 * math.pi)) + t * speed / (0.6 * min(w, h))) % 1.0
            frac = phase if motion == "Grow" else 1.0 - phase
            s = (0.05 + 0.2 * frac) * min(w, h)
        frame = bg.copy()
        _draw(frame, shape, (x, y), s, colour, angle0 + 0.02 * t)
        frames.append(frame)
    return frames


def write_synthetic(out: Path, spec: SynthSpec = SynthSpec()) -> Path:
    """Write the dataset to `out` (created; must not exist or be empty) and return it."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PRPError(f"{out}: exists and is not empty; give a new folder")
    classes = MOTIONS[: spec.classes]
    videos = out / "UCF-101"
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    entries: list[tuple[str, int, int]] = []  # (relative path, label, group)
    backgrounds = [_background(rng, spec.width, spec.height) for _ in range(spec.groups)]
    for label, cls in enumerate(classes):
        (videos / cls).mkdir(parents=True, exist_ok=True)
        for g in range(1, spec.groups + 1):
            for c in range(1, spec.clips_per_group + 1):
                rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
                writer = cv2.VideoWriter(str(videos / rel), fourcc, spec.fps, (spec.width, spec.height))
                if not writer.isOpened():
                    raise PRPError(f"{videos / rel}: OpenCV cannot write MJPG .avi here")
                for frame in _render(cls, rng, backgrounds[g - 1], n):
                    writer.write(frame)
                writer.release()
                entries.append((rel, label, g))
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    per_split = spec.groups // 3
    for k in (1, 2, 3):
        test_groups = set(range((k - 1) * per_split + 1, k * per_split + 1))
        (lists / f"trainlist{k:02d}.txt").write_text("".join(f"{r} {l + 1}\n" for r, l, g in entries if g not in test_groups))
        (lists / f"testlist{k:02d}.txt").write_text("".join(f"{r}\n" for r, l, g in entries if g in test_groups))
    (out / "synth.json").write_text(json.dumps({**asdict(spec), "version": SYNTH_VERSION, "classes_names": list(classes)}, indent=2))
    return out


def default_dataset(spec: SynthSpec = SynthSpec()) -> Path:
    """The built-in dataset under the user cache, generated on first use (atomically)."""
    root = cache_dir() / "datasets" / f"synth-{spec.key()}"
    if (root / "synth.json").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".synth-"))
    try:
        write_synthetic(tmp / "data", spec)
        try:
            os.replace(tmp / "data", root)
        except OSError:
            if not (root / "synth.json").exists():  # lost a race to another process: fine if it finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
