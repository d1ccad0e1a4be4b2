"""What `prp-deploy run` (and Recognizer.stream, index, bench) are asked to do with each
source: the task, windows, batching, and how live sources are waited out."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PRPError
from .decoders import Reconnect
from .file_decoder import Span
from .model_info import ModelInfo
from .sources import STALL_TIMEOUT_S

TASKS = ("recognize", "features", "both")


@dataclass
class RunOptions:
    task: str = "both"
    stride: int | None = None  # source frames between window starts; default half a window's span
    sample_rate: int | str | None = None  # None: the model's; "auto": scaled by source fps / training fps
    batch: int = 8
    topk: int = 5
    live: bool | None = None  # None: webcams and RTSP are live, files are not
    reconnect: int | None = None  # reopens in a row before a camera or stream is given up; None: forever (files never)
    reconnect_wait: float = 1.0  # seconds before the first reopen, doubling each further try ...
    reconnect_max_wait: float = 30.0  # ... up to this
    stall_timeout: float = STALL_TIMEOUT_S  # a stream that delivers no frame this long has an outage
    start: float | None = None  # seconds into each file (presentation time) to begin at: a seek
    end: float | None = None  # seconds into each file to stop before

    def __post_init__(self) -> None:
        Span(self.start, self.end)  # --start < --end, both >= 0: a usage error before anything opens

    def check(self, info: ModelInfo) -> None:
        if self.task not in TASKS:
            raise PRPError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task != "features" and info.kind != "recognizer":
            raise PRPError("this model gives features only (exported with --from pretrain); use --task features")
        if self.topk < 1 or self.batch < 1 or (self.stride is not None and self.stride < 1):
            raise PRPError(f"--topk, --batch and --stride must be >= 1, got {self.topk}, {self.batch}, {self.stride}")
        if self.stall_timeout <= 0 or self.reconnect_wait < 0 or self.reconnect_max_wait < self.reconnect_wait:
            raise PRPError(f"--stall-timeout must be > 0 and --reconnect-max-wait >= --reconnect-wait >= 0, got "
                           f"{self.stall_timeout}, {self.reconnect_max_wait}, {self.reconnect_wait}")

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)

    @property
    def reconnect_policy(self) -> Reconnect:
        return Reconnect(self.reconnect, self.reconnect_wait, self.reconnect_max_wait)


def resolve_sample_rate(opt, info: ModelInfo, fps: float, say) -> int:
    if opt is None:
        return info.sample_rate
    if opt == "auto":
        if fps > 0 and info.train_fps > 0:
            rate = max(1, round(info.sample_rate * fps / info.train_fps))
            say(f"sample rate {rate}: source {fps:.2f} fps, model trained at {info.train_fps:.2f} fps")
            return rate
        say("sample rate auto: the source or the model gives no fps; using the model's")
        return info.sample_rate
    rate = int(opt)
    if rate < 1:
        raise PRPError(f"--sample-rate must be >= 1 or auto, got {opt}")
    return rate


__all__ = ["TASKS", "RunOptions", "resolve_sample_rate"]
