"""Where window results go, each flushed as it is written: a stream that dies mid-way
leaves valid files up to its last batch.

- JSONL: one record per window, to stdout or a file.
- Features: a float32 .npy (windows × D) that is valid after every flush (numpy's own
  header, rewritten in place with the current count), and FILE.jsonl beside it, one line
  per row naming the window, appended as rows are.
- Overlay: the input video with the current top label and score drawn on it.
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
            self.writer.write(frame)
            self.written += 1

    def close(self) -> None:
        self._flush(1 << 62)
        if self.writer is not None:
            self.writer.release()
