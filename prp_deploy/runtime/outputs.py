"""Where window results go, each flushed as it is written: a stream that dies mid-way
leaves valid files up to its last batch.

- JSONL: one record per window, to stdout or a file.
- Features: a float32 .npy (windows × D) that is valid after every flush (its header is
  rewritten in place with the current count), and a JSON index of the windows beside it.
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

NPY_HEADER_BYTES = 128  # fixed, so the count can be rewritten in place


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


def _npy_header(rows: int, dim: int) -> bytes:
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)
    pad = NPY_HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise ValueError("feature array too large for the fixed header")
    return b"\x93NUMPY\x01\x00" + (NPY_HEADER_BYTES - 10).to_bytes(2, "little") + text.encode() + b" " * pad + b"\n"


class FeatureWriter:
    """Appends rows to FILE.npy and keeps FILE.json (the windows each row belongs to) in step."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim, self.rows = Path(path), dim, 0
        self.index_path = self.path.with_suffix(".json")
        self.windows: list[dict] = []
        self.file = open(self.path, "wb")
        self.file.write(_npy_header(0, dim))

    def write(self, features: np.ndarray, windows: list[dict]) -> None:
        feats = np.ascontiguousarray(features, dtype="<f4")
        self.file.seek(0, os.SEEK_END)
        self.file.write(feats.tobytes())
        self.rows += len(feats)
        self.file.seek(0)
        self.file.write(_npy_header(self.rows, self.dim))
        self.file.flush()
        self.windows += windows
        tmp = self.index_path.with_name("." + self.index_path.name + ".tmp")
        tmp.write_text(json.dumps({"rows": self.rows, "dim": self.dim, "windows": self.windows}))
        tmp.replace(self.index_path)

    def close(self) -> None:
        self.file.close()


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
