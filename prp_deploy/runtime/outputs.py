"""Where window results go, each flushed as it is written: a stream that dies mid-way
leaves valid files up to its last batch.

- JSONL: one record per window, to stdout or a file.
- Features: a float32 .npy (windows × D) that is valid after every flush (numpy's own
  header, rewritten in place with the current count), and FILE.jsonl beside it, one line
  per row naming the window, appended as rows are.
- Overlay: the input video with the current top label and score drawn on it, and with
  --segments a timeline bar of the segments found so far.
- Segments: one record per action segment, FILE.segments.jsonl.

`SourceSink` is everything one source writes; with several sources each has its own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from ..errors import PRPError

class JsonlWriter:
    def __init__(self, path: Path | None):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w") if path else sys.stdout
        self.close_file = path is not None

    def write(self, records: list[dict]) -> None:
        for r in records:
            self.file.write(json.dumps(r) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.close_file:
            self.file.close()


class FeatureWriter:
    """Appends rows to FILE.npy and a line per row to FILE.jsonl (the window it belongs to)."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim, self.rows = Path(path), dim, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index_path = self.path.with_suffix(".jsonl")
        self.file = open(self.path, "wb")
        self.index = open(self.index_path, "w")
        self.header_bytes = self._write_header()

    def _write_header(self) -> int:
        """numpy's format-1.0 header for (rows, dim); it pads to 64 bytes, so its length stays
        the same for any count this file can reach, and rewriting it in place is safe."""
        self.file.seek(0)
        np.lib.format.write_array_header_1_0(self.file, {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim)})
        end = self.file.tell()
        if self.rows and end != self.header_bytes:
            raise PRPError(f"{self.path}: the .npy header grew past its padding at {self.rows} rows")
        return end

    def write(self, features: np.ndarray, windows: list[dict]) -> None:
        feats = np.ascontiguousarray(features, dtype="<f4")
        self.file.seek(0, os.SEEK_END)
        self.file.write(feats.tobytes())
        self.rows += len(feats)
        self._write_header()
        self.file.flush()
        for w in windows:
            self.index.write(json.dumps(w) + "\n")
        self.index.flush()

    def close(self) -> None:
        self.file.close()
        self.index.close()


class OverlayWriter:
    """Writes each source frame once a window covering it has a prediction, with that label drawn."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), fps or 25.0
        self.writer = None
        self.pending: dict[int, np.ndarray] = {}
        self.label = ""
        self.written = 0
        self.total_frames: int | None = None  # for the timeline bar's scale
        self.segments: list[tuple[int, int, str]] = []  # (start frame, end frame, label) found so far

    def add(self, index: int, frame: np.ndarray) -> None:
        self.pending[index] = frame

    def update(self, label: str, score: float, upto: int) -> None:
        """Frames before `upto` get the newest label and are written."""
        self.label = f"{label} {score:.2f}"
        self._flush(upto)

    def _flush(self, upto: int) -> None:
        for i in sorted(k for k in self.pending if k < upto):
            frame = self.pending.pop(i).copy()
            if self.writer is None:
                h, w = frame.shape[:2]
                self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self.writer.isOpened():
                    raise PRPError(f"{self.path}: OpenCV cannot write an mp4v video here")
            scale = max(0.4, frame.shape[0] / 480)
            cv2.putText(frame, self.label, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(frame, self.label, (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), 1, cv2.LINE_AA)
            if self.total_frames:
                self._timeline(frame, i)
            self.writer.write(frame)
            self.written += 1

    def _timeline(self, frame: np.ndarray, index: int) -> None:
        """A bar along the bottom: the whole video, its segments so far in their class's colour, a cursor now."""
        h, w = frame.shape[:2]
        top, scale = h - max(6, h // 30), w / self.total_frames
        frame[top:, :] = (frame[top:, :] * 0.4).astype(np.uint8)
        for start, end, label in self.segments:
            colour = _colour(label)
            cv2.rectangle(frame, (int(start * scale), top), (max(int(start * scale), int(end * scale) - 1), h - 1), colour, -1)
        x = min(w - 1, int(index * scale))
        cv2.line(frame, (x, top), (x, h - 1), (255, 255, 255), 1)

    def close(self) -> None:
        self._flush(1 << 62)
        if self.writer is not None:
            self.writer.release()


def _colour(label: str) -> tuple[int, int, int]:
    """A stable, bright BGR colour per label."""
    hue = (sum(ord(c) * 31**i for i, c in enumerate(label)) % 180)
    return tuple(int(v) for v in cv2.cvtColor(np.array([[[hue, 200, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0])


class SourceSink:
    """What one source writes: window records, features, overlay, segments, and the lines
    echoed to stdout (`echo(kind, record, stem)`, kind "window" or "segment"). Each file is flushed
    per batch, so a source that fails keeps what was written for it."""

    def __init__(self, name: str, stem: str, records: Path | None, features: Path | None, overlay: Path | None, segments: Path | None,
                 feature_dim: int, segmenter=None, echo=None):
        self.name, self.stem, self.segmenter, self.echo = name, stem, segmenter, echo
        self.records = JsonlWriter(records) if records is not None else None
        self.features = FeatureWriter(features, feature_dim) if features is not None else None
        self.overlay = OverlayWriter(overlay, 0.0) if overlay is not None else None
        self.segments = JsonlWriter(segments) if segments is not None else None
        self.segment_count = 0

    def start(self, fps: float, total_frames: int | None) -> None:
        if self.overlay is not None:
            self.overlay.fps = fps or 25.0
            self.overlay.total_frames = total_frames if self.segmenter is not None else None

    def frame(self, index: int, original: np.ndarray) -> None:
        self.overlay.add(index, original)

    def windows(self, records: list[dict], features: np.ndarray | None, probs: np.ndarray | None) -> None:
        if self.records is not None:
            self.records.write(records)
        if self.features is not None and features is not None:
            self.features.write(features, [{k: r[k] for k in ("window", "start_frame", "end_frame", "start_s", "end_s")} for r in records])
        if self.segmenter is not None and probs is not None:
            for r, p in zip(records, probs):
                self._segments(self.segmenter.push(r["start_frame"], r["end_frame"], r["start_s"], r["end_s"], p))
        if self.echo is not None and (self.segmenter is None or probs is None):
            for r in records:
                self.echo("window", r, self.stem)
        if self.overlay is not None and "top" in records[-1]:
            best = records[-1]["top"][0]
            self.overlay.update(best["label"], best["score"], records[-1]["end_frame"])

    def _segments(self, found) -> None:
        rows = [s.record(self.name) for s in found]
        self.segment_count += len(rows)
        if self.segments is not None and rows:
            self.segments.write(rows)
        if self.overlay is not None:
            self.overlay.segments += [(s.start_frame, s.end_frame, s.label) for s in found]
        if self.echo is not None:
            for r in rows:
                self.echo("segment", r, self.stem)

    def close(self) -> None:
        """Close every file; the segments still open end with the source."""
        try:
            if self.segmenter is not None:
                self._segments(self.segmenter.finish())
        finally:
            for w in (self.records, self.features, self.overlay, self.segments):
                if w is not None:
                    w.close()
