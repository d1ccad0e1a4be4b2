"""Sources → the library's rows, through the runtime's engine and scheduler.

The library's vector. The export's `features` are the paper's retrieval features, conv5
max-pooled by (1, 2, 2) and flattened: 128-d at the tiny preset but 9,216-d at the paper's
input (512 × 2 × 3 × 3), 36 kB a window, too much for an index of millions. The library
keeps the mean of those features over their positions, per channel (C = conv5's channels:
128 tiny, 512 at the paper's size), L2-normalised, so the inner product is the cosine. At
the tiny preset there is one position and it *is* the retrieval feature; docs/results.md
measures the paper-size vector against the full one. A video's vector is the mean of its
windows' (before normalising), as evaluation averages its clips' features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..runtime.model_info import ModelInfo
from ..runtime.options import RunOptions
from ..runtime.scheduler import Source, schedule
from ..runtime.stream import softmax
from .store import SourceKey, normalise

VECTOR_DEFINITION = ("mean over positions, per conv5 channel, of the retrieval features (conv5 max-pooled by (1,2,2)); "
                     "L2-normalised; a video's is the mean of its windows' before normalising")


def vector_dim(info: ModelInfo) -> int:
    channels = info.raw.get("feature_channels")
    return int(channels) if channels and info.feature_dim % int(channels) == 0 else info.feature_dim


def library_vectors(features: np.ndarray, info: ModelInfo) -> np.ndarray:
    """(n, D) retrieval features → (n, C) per-channel means (not yet normalised)."""
    c = vector_dim(info)
    return features.reshape(len(features), c, -1).mean(-1).astype(np.float32)


@dataclass
class SourceResult:
    """One source, embedded (or failed): what a part stores for it."""
    key: SourceKey
    status: str = "ok"
    error: str | None = None
    frames: int = 0
    fps: float = 0.0
    records: list[dict] = field(default_factory=list)  # the windows' spans, in order
    vectors: list[np.ndarray] = field(default_factory=list)  # (n, C) chunks, not normalised
    logits: list[np.ndarray] = field(default_factory=list)  # (n, K) chunks for a recognizer

    def rows(self, info: ModelInfo, topk: int) -> tuple[list[dict], dict]:
        """(window rows, video row) in the stores' schemas."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        video = {"source": self.key.source, "status": self.status, "error": self.error, "size": self.key.size,
                 "mtime_ns": self.key.mtime_ns, "sha256": self.key.sha256, "frames": self.frames, "fps": self.fps,
                 "windows": len(self.records), "embedding": None, "top_labels": None, "top_scores": None, "indexed_at": now}
        if self.status != "ok" or not self.records:
            if self.status == "ok":
                video.update(status="failed", error="no window (no frame could be decoded)")
            return [], video
        order = np.argsort([r["window"] for r in self.records], kind="stable")  # batches may finish out of order
        vec = np.concatenate(self.vectors)[order]
        logits = np.concatenate(self.logits)[order] if self.logits else None
        probs = softmax(logits) if logits is not None else None
        windows = []
        for j, i in enumerate(order):
            r = self.records[i]
            row = {"source": self.key.source, "window": r["window"], "start_frame": r["start_frame"], "end_frame": r["end_frame"],
                   "start_s": r["start_s"], "end_s": r["end_s"], "padded": r.get("padded", 0), "embedding": normalise(vec[j]),
                   "top_labels": None, "top_scores": None}
            if probs is not None:
                row["top_labels"], row["top_scores"] = _top(probs[j], info.classes, topk)
            windows.append(row)
        video["embedding"] = normalise(vec.mean(0))
        if logits is not None:
            video["top_labels"], video["top_scores"] = _top(softmax(logits.mean(0)), info.classes, topk)
        return windows, video


def _top(p: np.ndarray, classes, k: int) -> tuple[list[str], list[float]]:
    order = np.argsort(-p)[: min(k, len(classes))]
    return [classes[i] for i in order], [float(p[i]) for i in order]


def embed_sources(keys: list[SourceKey], info: ModelInfo, backend, opts: RunOptions, max_open: int = 4,
                  on_open: Callable[[Source], None] | None = None, on_windows: Callable[[Source], None] | None = None,
                  say: Callable[[str], None] = lambda s: None) -> Iterator[SourceResult]:
    """A SourceResult per source as each ends (failed ones too), windows batched across sources."""
    by_name = {k.source: k for k in keys}
    pending: dict[int, SourceResult] = {}
    for ev in schedule([Source(k.source) for k in keys], info, backend, opts, max_open, say=say):
        res = pending.setdefault(id(ev.source), SourceResult(by_name[ev.source.name]))
        if ev.kind == "open":
            res.fps = float(ev.source.reader.fps or 0.0)
            if on_open:
                on_open(ev.source)
        elif ev.kind == "windows":
            res.records += ev.records
            res.vectors.append(library_vectors(ev.features, info))
            if ev.logits is not None:
                res.logits.append(ev.logits.astype(np.float32))
            if on_windows:
                on_windows(ev.source)
        else:  # close
            res.status, res.error = ("failed", ev.source.error) if ev.source.status == "failed" else ("ok", None)
            res.frames = ev.source.stats.frames
            yield pending.pop(id(ev.source))
