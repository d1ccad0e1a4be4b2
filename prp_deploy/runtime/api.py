"""`from prp_deploy import Recognizer`: the runtime for applications, torch-free.

    rec = Recognizer("runs/NAME/export")                 # or a .onnx / .plan; backend="auto", precision=None
    rec.predict(frames)      # the BGR uint8 frames of one window → [{"label", "score"}, ...]
    rec.features(frames)     # → (D,) float32 embedding
    for record in rec.stream("video.mp4"):  # the same records as `prp-deploy run`'s JSONL
        ...
    for record in rec.stream_many(["a.mp4", "cams/", "rtsp://..."]):  # one engine, windows batched across sources
        ...
    seg = Segmenter(rec.classes, smooth=3, threshold=0.5, hysteresis=0.3)  # segments from your own window scores
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import PRPError
from .backends import check_backend_matches, open_backend
from .model_info import read_model_info
from .run import DEFAULT_MAX_OPEN, RunOptions, stream_many, stream_records
from .source_list import expand_sources
from .stream import top_k


class Recognizer:
    def __init__(self, model: str | Path, backend: str = "auto", precision: str | None = None):
        self.info = read_model_info(model)
        self.backend = open_backend(model, backend, precision)
        check_backend_matches(self.backend, self.info)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def window_frames(self) -> int:
        """Source frames one window takes: T × sample_rate."""
        return self.info.preprocess.frames * self.info.sample_rate

    def clip(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """The model input (3, T, crop, crop) for one window of BGR uint8 frames (fewer are padded by repeating the last)."""
        if len(frames) == 0:
            raise PRPError("a window needs at least one frame")
        p, step = self.info.preprocess, self.info.sample_rate
        picked = [frames[min(j * step, len(frames) - 1)] for j in range(p.frames)]
        return p.clip(np.stack([p.frame(np.asarray(f)) for f in picked]))

    def _run(self, frames) -> dict[str, np.ndarray]:
        return self.backend.run(self.clip(frames)[None])

    def predict(self, frames: Sequence[np.ndarray], topk: int = 5) -> list[dict]:
        if self.info.kind != "recognizer":
            raise PRPError("this model gives features only (exported with --from pretrain)")
        return top_k(self._run(frames)["logits"][0], self.info.classes, topk)

    def features(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return self._run(frames)["features"][0]

    def stream(self, source: str, **options) -> Iterator[dict]:
        """Records for every window of `source`, as `prp-deploy run` writes them (options as RunOptions)."""
        task = options.pop("task", "recognize" if self.info.kind == "recognizer" else "features")
        yield from stream_records(str(source), self.info, self.backend, RunOptions(task=task, **options))

    def stream_many(self, sources, max_open: int = DEFAULT_MAX_OPEN, on_failure=None, **options) -> Iterator[dict]:
        """Records of every window of every source (files, folders, globs, webcams, URLs) as they
        come, batched across sources into each engine call; each record names its source. A
        source that fails ends alone: `on_failure(name, reason)` is told, the others carry on."""
        task = options.pop("task", "recognize" if self.info.kind == "recognizer" else "features")
        failed = (lambda src: on_failure(src.name, src.error)) if on_failure else None
        yield from stream_many(expand_sources([str(s) for s in sources]), self.info, self.backend, RunOptions(task=task, **options),
                               max_open, failed=failed)
