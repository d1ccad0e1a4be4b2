"""Frames → windows → batches → backend → records, with decoding on its own thread.

A window starting at source frame f takes frames f, f+k, ..., f+(T−1)·k (k the sample
rate) and ends (exclusive) at f+(T−1)·k+1; windows start every `stride` frames. Past the
end of a video shorter than one window the last frame repeats, as in evaluation; the
record says how many frames were padded. Each window's tensor is made by
`Preprocess.clip` from frames that `FrameReader` made with `Preprocess.frame`: the same
steps as evaluation, so a window at f equals the evaluation clip at f.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..errors import PRPError
from .model_info import ModelInfo
from .sources import Frame, FrameReader


@dataclass
class Window:
    number: int
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float
    frames: list[Frame]  # T of them (repeats where padded or dropped)
    padded: int = 0

    def tensor(self, info: ModelInfo) -> np.ndarray:
        return info.preprocess.clip(np.stack([f.pixels for f in self.frames]))  # (3, T, crop, crop)


def windows(frames: Iterator[Frame], clip_len: int, step: int, stride: int, live: bool, fps: float) -> Iterator[Window]:
    """Sliding windows over a frame stream. A live stream jumps to the newest window it can
    make rather than fall behind (frames it dropped are replaced by the previous one)."""
    span = (clip_len - 1) * step + 1
    buffer: collections.deque[Frame] = collections.deque()
    next_start, number, last = 0, 0, None
    for frame in frames:
        buffer.append(frame)
        last = frame
        if live and frame.index >= next_start + span - 1:
            next_start = max(next_start, ((frame.index - span + 1) // stride) * stride)
        while frame.index >= next_start + span - 1:
            yield _make(number, next_start, clip_len, step, buffer, fps)
            number += 1
            next_start += stride
        while len(buffer) > 1 and buffer[1].index <= next_start:  # keep only what later windows can use
            buffer.popleft()
    if number == 0 and last is not None:  # shorter than one window: one window, padded with the last frame
        yield _make(0, 0, clip_len, step, buffer, fps)


def _make(number: int, start: int, clip_len: int, step: int, buffer, fps: float) -> Window:
    wanted = [start + j * step for j in range(clip_len)]
    frames, padded, k = [], 0, 0
    items = list(buffer)
    for w in wanted:
        while k + 1 < len(items) and items[k + 1].index <= w:
            k += 1
        frames.append(items[k])  # the newest frame at or before w (w itself unless dropped or past the end)
        padded += items[k].index < w
    end = wanted[-1] + 1
    start_s = frames[0].time_s
    end_s = end / fps if fps else frames[-1].time_s
    return Window(number, start, end, start_s, end_s, frames, padded)


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
                "reconnects": self.reconnects,
                "frames_per_s": self.frames / max(self.wall_s, 1e-9), "windows_per_s": self.windows / max(self.wall_s, 1e-9),
                "latency_p50_ms": 1e3 * float(np.percentile(lat, 50)), "latency_p95_ms": 1e3 * float(np.percentile(lat, 95)),
                "inference_s": self.inference_s, "wall_s": self.wall_s, "video_prediction": video}


def batches(wins: Iterator[Window], size: int, reader: FrameReader, live: bool) -> Iterator[list[Window]]:
    """Up to `size` windows; a live source sends what it has rather than wait for a full batch."""
    batch: list[Window] = []
    for w in wins:
        batch.append(w)
        if len(batch) >= size or (live and reader.queue.empty()):
            yield batch
            batch = []
    if batch:
        yield batch


def run_windows(reader: FrameReader, backend, info: ModelInfo, step: int, stride: int, batch: int) -> Iterator[tuple[list[Window], dict, float]]:
    """(windows, outputs, seconds in the backend) per batch."""
    if step < 1 or stride < 1 or batch < 1:
        raise PRPError(f"sample rate, stride and batch must be >= 1, got {step}, {stride}, {batch}")
    live = reader.spec.live
    max_batch = getattr(backend, "max_batch", None) or batch
    for group in batches(windows(iter(reader), info.preprocess.frames, step, stride, live, reader.fps), min(batch, max_batch), reader, live):
        x = np.stack([w.tensor(info) for w in group])
        t0 = time.perf_counter()
        out = backend.run(x)
        yield group, out, time.perf_counter() - t0
