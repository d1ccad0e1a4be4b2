"""Frames → windows (the scheduler batches them into engine calls).

A window starting at source frame f takes frames f, f+k, ..., f+(T−1)·k (k the sample
rate) and ends (exclusive) at f+(T−1)·k+1; windows start every `stride` frames, counted
from the file's frame 0 even where reading began later (`--start`). Its times are the
presentation times of its first and last frames. Past the
end of a video shorter than one window the last frame repeats, as in evaluation; the
record says how many frames were padded. Each window's tensor is made by
`Preprocess.clip` from frames that `FrameReader` made with `Preprocess.frame`: the same
steps as evaluation, so a window at f equals the evaluation clip at f.
"""

from __future__ import annotations

import collections
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..errors import PRPError
from .model_info import ModelInfo
from .sources import Frame


@dataclass
class Window:
    number: int
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float
    frames: list[Frame]  # T of them (repeats where padded or dropped)
    padded: int = 0

    @property
    def wall_time(self) -> str | None:
        """A live source's capture time of the first frame: UTC, ISO 8601 (None for a file)."""
        wall = self.frames[0].wall
        if wall is None:
            return None
        return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def tensor(self, info: ModelInfo) -> np.ndarray:
        return info.preprocess.clip(np.stack([f.pixels for f in self.frames]))  # (3, T, crop, crop)


class Windower:
    """Sliding windows over one source's frames, pushed one at a time (so one loop can feed
    many sources). A live stream jumps to the newest window it can make rather than fall
    behind (frames it dropped are replaced by the previous one)."""

    def __init__(self, clip_len: int, step: int, stride: int, live: bool, fps: float):
        if step < 1 or stride < 1:
            raise PRPError(f"sample rate and stride must be >= 1, got {step}, {stride}")
        self.clip_len, self.step, self.stride, self.live, self.fps = clip_len, step, stride, live, fps
        self.span = (clip_len - 1) * step + 1
        self.buffer: collections.deque[Frame] = collections.deque()
        self.next_start, self.made = 0, 0

    def push(self, frame: Frame) -> list[Window]:
        if self.made == 0 and not self.buffer:  # a file read from --start: windows fall where the whole file's do
            self.next_start = -(-frame.index // self.stride) * self.stride
        self.buffer.append(frame)
        if self.live and frame.index >= self.next_start + self.span - 1:
            self.next_start = max(self.next_start, ((frame.index - self.span + 1) // self.stride) * self.stride)
        out = []
        while frame.index >= self.next_start + self.span - 1:
            out.append(_make(self.made, self.next_start, self.clip_len, self.step, self.buffer))
            self.made += 1
            self.next_start += self.stride
        while len(self.buffer) > 1 and self.buffer[1].index <= self.next_start:  # keep only what later windows can use
            self.buffer.popleft()
        return out

    def finish(self) -> list[Window]:
        """A source shorter than one window still gets one window, padded with its last frame."""
        if self.made == 0 and self.buffer:
            self.made = 1
            return [_make(0, self.buffer[0].index, self.clip_len, self.step, self.buffer)]
        return []


def windows(frames: Iterator[Frame], clip_len: int, step: int, stride: int, live: bool, fps: float) -> Iterator[Window]:
    """All windows of a frame iterator (see Windower)."""
    w = Windower(clip_len, step, stride, live, fps)
    for frame in frames:
        yield from w.push(frame)
    yield from w.finish()


def _make(number: int, start: int, clip_len: int, step: int, buffer) -> Window:
    wanted = [start + j * step for j in range(clip_len)]
    frames, padded, k = [], 0, 0
    items = list(buffer)
    for w in wanted:
        while k + 1 < len(items) and items[k + 1].index <= w:
            k += 1
        frames.append(items[k])  # the newest frame at or before w (w itself unless dropped or past the end)
        padded += items[k].index < w
    # The presentation times of its first and last frames (a live source's: capture clock)
    return Window(number, start, wanted[-1] + 1, frames[0].time_s, frames[-1].time_s, frames, padded)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, classes, k: int) -> list[dict]:
    p = softmax(logits)
    order = np.argsort(-p)[: min(k, len(classes))]
    return [{"label": classes[i], "score": round(float(p[i]), 6)} for i in order]


@dataclass
class StreamStats:
    frames: int = 0
    windows: int = 0
    dropped_frames: int = 0
    reconnects: int = 0
    outages: int = 0
    outage_s: float = 0.0
    reconnect_attempts: int = 0
    padded_windows: int = 0
    latencies: list[float] = field(default_factory=list)
    inference_s: float = 0.0
    wall_s: float = 0.0
    logits_sum: np.ndarray | None = None

    def summary(self, classes) -> dict:
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        video = None
        if self.logits_sum is not None and self.windows:
            video = top_k(self.logits_sum / self.windows, classes, 3)
        return {"frames": self.frames, "windows": self.windows, "dropped_frames": self.dropped_frames, "padded_windows": self.padded_windows,
                "reconnects": self.reconnects, "outages": self.outages, "outage_s": round(self.outage_s, 3),
                "reconnect_attempts": self.reconnect_attempts,
                "frames_per_s": self.frames / max(self.wall_s, 1e-9), "windows_per_s": self.windows / max(self.wall_s, 1e-9),
                "latency_p50_ms": 1e3 * float(np.percentile(lat, 50)), "latency_p95_ms": 1e3 * float(np.percentile(lat, 95)),
                "inference_s": self.inference_s, "wall_s": self.wall_s, "video_prediction": video}
