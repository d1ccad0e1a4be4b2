"""The built-in default dataset: small, real .avi files in the UCF101 layout.

Classes differ only in how one object moves; its shape, colour, size, speed and start
are random per video, and each group (UCF101's gXX, one "actor") shares a background
with faint static blobs. No single frame tells the class, so a model must use time.
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
from typing import Callable

import cv2
import numpy as np

from ..errors import PRPError
from ..paths import cache_dir

MOTIONS = ("SlideRight", "SlideLeft", "SlideUp", "SlideDown", "Orbit", "Shake", "Grow", "Shrink")
SYNTH_VERSION = 3  # bump when the generator's output changes, so caches regenerate


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. The defaults are the built-in dataset: 8 classes × 72 videos, rendered
    at 48×36, the size the tiny preset reads (so no resize blurs or aliases the motion)."""

    classes: int = 8
    groups: int = 6  # split k tests groups 2k-1 and 2k (of 6), like UCF101's grouped splits
    clips_per_group: int = 12
    width: int = 48
    height: int = 36
    min_frames: int = 72  # ≥ 8·8 + 1: every playback rate of the tiny preset fits every video
    max_frames: int = 120
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
    """A smooth colour field with soft texture and at most two faint static blobs, float32 BGR.

    The blobs are low-contrast on purpose: a static distractor that looks exactly like the
    moving object makes the task a search before it is a motion task.
    """
    low = rng.uniform(40, 200, size=(3, 4, 3)).astype(np.float32)
    bg = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    sigma = max(1.0, min(w, h) / 40)
    bg += cv2.GaussianBlur(rng.normal(0, 18, size=(h, w, 3)).astype(np.float32), (0, 0), sigma)
    for _ in range(int(rng.integers(0, 3))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        r = int(rng.integers(2, max(3, min(w, h) // 8)))
        blob = np.zeros((h, w), np.float32)
        cv2.circle(blob, c, r, 1.0, -1, cv2.LINE_AA)
        bg += blob[..., None] * rng.uniform(-35, 35, 3).astype(np.float32)
    return bg


def _draw(frame: np.ndarray, shape: int, centre: tuple[float, float], size: float, colour, angle: float) -> None:
    """Anti-aliased shape at a sub-pixel position (OpenCV's fixed-point `shift`: 1/16 pixel)."""
    q = 16
    cx, cy, s = centre[0], centre[1], max(1.0, size)
    if shape == 0:
        cv2.circle(frame, (int(round(cx * q)), int(round(cy * q))), int(round(s * q)), colour, -1, cv2.LINE_AA, shift=4)
        return
    k = 4 if shape == 1 else 3
    pts = [(cx + s * math.cos(angle + 2 * math.pi * i / k), cy + s * math.sin(angle + 2 * math.pi * i / k)) for i in range(k)]
    cv2.fillPoly(frame, [np.round(np.array(pts) * q).astype(np.int32)], colour, cv2.LINE_AA, shift=4)


def _contrasting_colour(rng: np.random.Generator, bg: np.ndarray) -> tuple[float, float, float]:
    """A random colour at least ~80 grey levels (Euclidean) from the background's mean."""
    mean = bg.reshape(-1, 3).mean(0)
    for _ in range(100):
        c = rng.uniform(0, 255, 3)
        if np.linalg.norm(c - mean) > 80:
            break
    return tuple(float(v) for v in c)


@dataclass
class _Track:
    """Where one object is at each frame, as `motion` moves it (see _render)."""
    motion: str
    ox: float  # top-left corner of the central S×S square
    oy: float
    side: float  # S
    size: float  # the object's radius
    speed: float
    x0: float
    y0: float
    angle0: float
    direction: int  # Orbit: 1 or -1
    radius: float  # Orbit
    centre: tuple[float, float]  # Orbit, Shake
    period: float  # Shake
    amplitude: float  # Shake
    lo_size: float  # Grow/Shrink
    hi_size: float
    cycle: float  # Grow/Shrink: frames from small to large
    height: int

    def wrapped(self, v: float, origin: float) -> float:
        """Positions wrap outside the central square's edge, the object fully out."""
        return origin - self.size + (v - origin + self.size) % (self.side + 2 * self.size)

    def at(self, t: int, rng: np.random.Generator, cycle_pos: dict) -> tuple[float, float, float]:
        """(x, y, radius) at frame t; Grow/Shrink draws a new place from `rng` at each new cycle."""
        x, y, s, m = self.x0, self.y0, self.size, self.motion
        if m in ("SlideRight", "SlideLeft"):
            x = self.wrapped(self.x0 + (1 if m == "SlideRight" else -1) * self.speed * t, self.ox)
        elif m in ("SlideDown", "SlideUp"):
            y = self.wrapped(self.y0 + (1 if m == "SlideDown" else -1) * self.speed * t, self.oy)
        elif m == "Orbit":
            a = self.angle0 + self.direction * self.speed * t / self.radius
            x, y = self.centre[0] + self.radius * math.cos(a), self.centre[1] + self.radius * math.sin(a)
        elif m == "Shake":
            x = self.centre[0] + self.amplitude * math.sin(self.angle0 + 2 * math.pi * t / self.period)
            y = self.centre[1] + (self.y0 - self.height / 2) * 0.5
        elif m in ("Grow", "Shrink"):
            # Exponential growth (or shrinkage) over one cycle; each new cycle is a new object at
            # a new place, so the reset reads as a cut, not as the opposite motion.
            k, phase = divmod(t / self.cycle + self.angle0 / (2 * math.pi), 1.0)
            if k not in cycle_pos:
                cycle_pos[k] = (self.ox + rng.uniform(0.25, 0.75) * self.side, self.oy + rng.uniform(0.25, 0.75) * self.side)
            x, y = cycle_pos[k]
            frac = phase if m == "Grow" else 1.0 - phase
            s = self.lo_size * (self.hi_size / self.lo_size) ** frac
        return x, y, s


def _render(motion: str, rng: np.random.Generator, bg: np.ndarray, n: int) -> list[np.ndarray]:
    """Frames of one video: one object moving as `motion` says, over `bg` (float32 BGR), uint8 BGR out.

    All sizes and speeds are fractions of the short side S, so any frame size shows the same
    motion. The object moves inside the central S×S square (where a square crop looks) and
    wraps around its edges, so a clip of any length shows one direction of motion.
    """
    h, w = bg.shape[:2]
    side = min(w, h)
    ox, oy = (w - side) / 2, (h - side) / 2  # top-left corner of the central square
    shape = int(rng.integers(3))
    colour = _contrasting_colour(rng, bg)
    size = rng.uniform(0.09, 0.15) * side  # radius
    # Speed: 2.5-5 % of S per frame (1-2 px at the tiny preset's 36-40 px): visible in an
    # 8-frame clip, and a ratio of 2 between slowest and fastest keeps playback rates
    # 1, 2, 4, 8 apart in displacement per frame.
    speed = rng.uniform(0.025, 0.05) * side
    x0, y0 = ox + rng.uniform(0, side), oy + rng.uniform(0, side)
    angle0 = rng.uniform(0, 2 * math.pi)
    spin = rng.uniform(-0.05, 0.05)
    direction = 1 if rng.random() < 0.5 else -1
    radius = rng.uniform(0.2, 0.32) * side
    centre = (w / 2 + rng.uniform(-0.1, 0.1) * side, h / 2 + rng.uniform(-0.1, 0.1) * side)
    period = rng.uniform(4, 8)  # Shake: a full oscillation every 4-8 frames, so every clip reverses
    amplitude = rng.uniform(0.1, 0.18) * side
    growth = 1 + speed / (3 * size)  # Grow/Shrink: radius ×(1.06-1.19) per frame
    lo_size, hi_size = 0.05 * side, 0.25 * side
    cycle = math.log(hi_size / lo_size) / math.log(growth)  # frames from small to large
    track = _Track(motion, ox, oy, side, size, speed, x0, y0, angle0, direction, radius, centre, period, amplitude,
                   lo_size, hi_size, cycle, h)
    frames, cycle_pos = [], {}
    for t in range(n):
        x, y, s = track.at(t, rng, cycle_pos)
        frame = bg.copy()
        _draw(frame, shape, (x, y), s, colour, angle0 + spin * t)
        noise = rng.normal(0, 2.0, size=frame.shape).astype(np.float32)  # sensor noise, fresh each frame
        frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return frames


def write_synthetic(out: Path, spec: SynthSpec = SynthSpec(), progress: Callable[[], None] = lambda: None) -> Path:
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
                progress()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    per_split = spec.groups // 3
    for k in (1, 2, 3):
        test_groups = set(range((k - 1) * per_split + 1, k * per_split + 1))
        (lists / f"trainlist{k:02d}.txt").write_text("".join(f"{r} {l + 1}\n" for r, l, g in entries if g not in test_groups))
        (lists / f"testlist{k:02d}.txt").write_text("".join(f"{r}\n" for r, l, g in entries if g in test_groups))
    (out / "synth.json").write_text(json.dumps({**asdict(spec), "version": SYNTH_VERSION, "classes_names": list(classes)}, indent=2))
    return out


def default_dataset_root(spec: SynthSpec = SynthSpec()) -> Path:
    return cache_dir() / "datasets" / f"synth-{spec.key()}"


def default_dataset(spec: SynthSpec = SynthSpec(), progress: Callable[[], None] = lambda: None) -> Path:
    """The built-in dataset under the user cache, generated on first use (atomically); `progress` is called per video written."""
    root = default_dataset_root(spec)
    if (root / "synth.json").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".synth-"))
    try:
        write_synthetic(tmp / "data", spec, progress)
        try:
            os.replace(tmp / "data", root)
        except OSError:
            if not (root / "synth.json").exists():  # lost a race to another process: fine if it finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
