"""`from prp_deploy import Recognizer`: the runtime for applications, torch-free.

    rec = Recognizer("runs/NAME/export")     # or a .onnx / .plan; no argument: the newest export under runs/
    rec.predict(frames)      # the BGR uint8 frames of one window → [{"label", "score"}, ...]
    rec.features(frames)     # → (D,) float32 embedding
    for record in rec.stream("video.mp4"):  # `prp-deploy run`'s records, plus numpy "probs" / "features"
        ...
    for record in rec.stream_many(["a.mp4", "cams/", "rtsp://..."]):  # one engine, windows batched across sources
        ...
    seg = Segmenter(rec.classes)             # segments: seg.push_record(record) ..., then seg.finish()
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import PRPError
from .backends import check_backend_matches, open_backend
from .model_info import read_model_info
from .run import DEFAULT_MAX_OPEN, RunOptions, find_model, stream_many, stream_records
from .metrics import start_metrics
from .stopping import StopRequest
from .source_list import expand_sources
from .stream import top_k

STREAM_OPTIONS = tuple(f.name for f in dataclasses.fields(RunOptions))


def _options(where: str, options: dict, default_task: str) -> RunOptions:
    """RunOptions from keywords, an unknown one named as the caller spelled it."""
    unknown = [k for k in options if k not in STREAM_OPTIONS]
    if unknown:
        raise TypeError(f"{where} got an unexpected keyword argument {unknown[0]!r}; it takes {', '.join(STREAM_OPTIONS)}")
    return RunOptions(**{"task": default_task, **options})


def _metrics(port: int | None, host: str):
    """The endpoint, listening from the call on (a taken port fails now, not at the first next())."""
    return start_metrics(port, host, lambda s: print(s, file=sys.stderr))


def _closing_metrics(records: Iterator[dict], metrics) -> Iterator[dict]:
    if metrics is not None:
        metrics.close_with(records)  # a stream never started, then dropped, still frees its port
    return records


class Recognizer:
    """An exported PRP model, ready for frames, videos and streams (numpy, OpenCV and an engine; no torch).

    `model`: an export folder (`runs/NAME/export`), or one model file (`.onnx`, `.plan`);
    None takes the newest export under `runs/`, as `prp-deploy run` does. `backend`: auto
    (the artefact table's order: TensorRT, then ONNX Runtime) or a named engine;
    `precision`: fp32, fp16 or int8 to pick that artefact (unset: never a reduced one, except INT8 where export measured it faster on this machine).
    Only a model file that parity passed is served (else UnverifiedModel, a PRPError, says
    why); `allow_unverified=True` opens it anyway, with a warning on stderr.

    `predict` and `features` take one window of BGR uint8 frames (`window_frames` of them);
    `stream` and `stream_many` read whole sources on reader threads and yield a record per
    window, as `prp-deploy run` writes them, plus numpy fields: `probs` (every class's
    probability, what `Segmenter.push_record` takes) and, with task features or both,
    `features` (the window's embedding). Breaking out of a stream stops and joins its readers.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", precision: str | None = None,
                 allow_unverified: bool = False):
        model = find_model(model, lambda s: None)
        self.model = Path(model)
        self.info = read_model_info(model)
        # What the choice says (an artefact passed over, a warning for an unverified one) goes to stderr, as in `run`.
        self.backend = open_backend(model, backend, precision, allow_unverified=allow_unverified, say=lambda s: print(s, file=sys.stderr))
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
        """The top `topk` labels of one window: [{"label", "score"}, ...], scores are softmax probabilities."""
        if self.info.kind != "recognizer":
            raise PRPError("this model gives features only (exported with --from pretrain)")
        return top_k(self._run(frames)["logits"][0], self.info.classes, topk)

    def features(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """The (D,) float32 embedding of one window (conv5, max-pooled: the retrieval features)."""
        return self._run(frames)["features"][0]

    def _default_task(self) -> str:
        return "both" if self.info.kind == "recognizer" else "features"

    def stream(self, source: str | Path, stop: StopRequest | None = None, metrics: int | None = None, metrics_host: str = "127.0.0.1",
               **options) -> Iterator[dict]:
        """Records for every window of `source` (a file, webcam index or URL), as they are computed.

        Options as `prp-deploy run`'s: task (recognize | features | both; default both for a
        recognizer), stride, sample_rate, batch, topk, live, reconnect (None: forever),
        reconnect_wait, reconnect_max_wait, stall_timeout, start and end (a file's span, in
        seconds of presentation time). A source that fails raises
        StreamError after the records it gave. `stop.request()`, from any thread, ends it as
        SIGTERM ends `run`: the windows already made come, then the iteration ends.
        `metrics=PORT` serves Prometheus metrics (as `run --metrics`) from now until the stream ends.
        """
        opts = _options("Recognizer.stream()", options, self._default_task())
        opts.check(self.info)  # now, not at the first next()
        served = _metrics(metrics, metrics_host)
        return _closing_metrics(stream_records(str(source), self.info, self.backend, opts, arrays=True, stop=stop, metrics=served), served)

    def stream_many(self, sources, max_open: int = DEFAULT_MAX_OPEN, on_failure=None, stop: StopRequest | None = None,
                    metrics: int | None = None, metrics_host: str = "127.0.0.1", **options) -> Iterator[dict]:
        """Records of every window of every source (files, folders, globs, webcams, URLs) as they
        come, batched across sources into each engine call; each record names its source. A
        source that fails ends alone: `on_failure(name, reason)` is told, the others carry on."""
        opts = _options("Recognizer.stream_many()", options, self._default_task())
        opts.check(self.info)
        failed = (lambda src: on_failure(src.name, src.error)) if on_failure else None
        served = _metrics(metrics, metrics_host)
        return _closing_metrics(stream_many(expand_sources([str(s) for s in sources]), self.info, self.backend, opts, max_open, failed=failed,
                                            arrays=True, stop=stop, metrics=served), served)
