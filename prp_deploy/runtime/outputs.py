"""Where window results go, each flushed as it is written: a stream that dies mid-way
leaves valid files up to its last batch.

- JSONL: one record per window, to stdout or a file.
- Features: a float32 .npy (windows × D) that is valid after every flush (numpy's own
  header, rewritten in place with the current count), and FILE.jsonl beside it, one line
  per row naming the window, appended as rows are.
- Overlay (overlay.py): the input video with the current top label and score drawn on it, and with
  --segments a timeline bar of the segments found so far.
- Segments: one record per action segment, FILE.segments.jsonl.

`SourceSink` is everything one source writes; with several sources each has its own.
`RunWriters` turns a run's scheduler events into its sinks' writes and a row per source.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import PRPError
from .model_info import ModelInfo
from .output_paths import OutputPlan, SourceFiles
from .overlay import OverlayWriter, crop_box_of
from .stream import softmax
from .summary import source_row


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

    def __init__(self, path: Path, index: Path, dim: int):
        self.path, self.dim, self.rows = Path(path), dim, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index_path = Path(index)
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


class SourceSink:
    """What one source writes: window records, features, overlay, segments, and the lines
    echoed to stdout (`echo(kind, record, stem)`, kind "window" or "segment"). Each file is flushed
    per batch, so a source that fails keeps what was written for it."""

    def __init__(self, name: str, stem: str, files: SourceFiles, feature_dim: int, segmenter=None, echo=None):
        """`files`: where each output goes, as `output_paths.plan_outputs` decided (never two on one path)."""
        self.name, self.stem, self.segmenter, self.echo = name, stem, segmenter, echo
        self.records = JsonlWriter(files.records) if files.records is not None else None
        self.features = FeatureWriter(files.features, files.features_index, feature_dim) if files.features is not None else None
        self.overlay = OverlayWriter(files.overlay, 0.0) if files.overlay is not None else None
        self.segments = JsonlWriter(files.segments) if files.segments is not None else None
        self.segment_count = 0

    def start(self, fps: float, total_frames: int | None, crop_box=None) -> None:
        if self.overlay is not None:
            self.overlay.crop_box = crop_box
            self.overlay.fps = fps or 25.0
            self.overlay.timeline = self.segmenter is not None
            self.overlay.total_frames = total_frames

    def frame(self, index: int, original: np.ndarray) -> None:
        self.overlay.add(index, original)

    def windows(self, records: list[dict], features: np.ndarray | None, probs: np.ndarray | None, heat: np.ndarray | None = None) -> None:
        if self.records is not None:
            self.records.write(records)
        if self.features is not None and features is not None:
            self.features.write(features, [{k: r[k] for k in ("window", "start_frame", "end_frame", "start_s", "end_s", "wall_time") if k in r} for r in records])
        if self.segmenter is not None and probs is not None:
            for r, p in zip(records, probs):
                self._segments(self.segmenter.push(r["start_frame"], r["end_frame"], r["start_s"], r["end_s"], p))
        if self.echo is not None and (self.segmenter is None or probs is None):
            for r in records:
                self.echo("window", r, self.stem)
        if self.overlay is not None and "top" in records[-1]:
            self.overlay.update(records[-1]["top"], records[-1]["end_frame"], heat[-1] if heat is not None else None)

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


class RunWriters:
    """What one run's events write: each open source's sink, a row per finished source, and
    DIR/sources.jsonl (appended to with --skip-done)."""

    def __init__(self, files: OutputPlan, info: ModelInfo, o, echo, progress):  # o: run.RunOutputs; progress: progress.Progress
        self.files, self.info, self.o, self.echo, self.progress = files, info, o, echo, progress
        self.sinks: dict[int, SourceSink] = {}
        self.rows: list[dict] = []
        self.log = open(files.log, "a" if o.skip_done else "w") if files.log is not None else None

    def frame(self, src, frame) -> None:  # --overlay: each source frame, drawn once a window covers it
        self.sinks[id(src)].frame(frame.index, frame.original)
        frame.original = None

    def handle(self, ev) -> None:
        src, info = ev.source, self.info
        if ev.kind == "open":
            sink = self.sinks[id(src)] = SourceSink(src.name, src.stem, self.files.files[src.name], info.feature_dim,
                                                    self.o.segments.segmenter(info.classes) if self.o.segments else None, self.echo)
            sink.start(src.reader.fps, src.reader.total_frames, crop_box_of(info.preprocess.short_side, info.preprocess.crop))
            self.progress.opened(src)
        elif ev.kind == "windows":
            self.sinks[id(src)].windows(ev.records, ev.features, softmax(ev.logits) if ev.logits is not None else None, ev.maps)
            self.progress.windows(src)
        else:
            self._closed(src)

    def _closed(self, src) -> None:
        sink = self.sinks.pop(id(src), None)
        if sink is not None:
            sink.close()
        row = source_row(src, self.info.classes)
        row["segments"] = sink.segment_count if sink is not None and self.o.segments else None
        self.rows.append(row)
        if self.log is not None:
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()
        self.progress.closed(src)

    def close(self) -> None:
        for sink in self.sinks.values():  # interrupted: what was written stays valid
            sink.close()
        if self.log is not None:
            self.log.close()
