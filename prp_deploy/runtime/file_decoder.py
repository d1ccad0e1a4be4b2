"""A video file as a source: through the data layer's PyAV reader (`data.video_file`), so the
runtime sees the very frames training and parity saw, seeks to `--start` and stops at
`--end`, and times each frame by its presentation time. A file PyAV cannot read that way
(no timestamps, a demuxer it lacks) goes through OpenCV from the start, said in one line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from ..data.video_file import VideoFile
from ..errors import UsageError, VideoError


@dataclass(frozen=True)
class Span:
    """Which part of a file to read: presentation times in seconds, [start_s, end_s)."""
    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self):
        if self.start_s is not None and self.start_s < 0:
            raise UsageError(f"--start must be >= 0, got {self.start_s:g}")
        if self.start_s is not None and self.end_s is not None and self.start_s >= self.end_s:
            raise UsageError(f"--start ({self.start_s:g} s) must come before --end ({self.end_s:g} s)")

    def __bool__(self) -> bool:
        return self.start_s is not None or self.end_s is not None


class FileDecoder:
    """A video file, frame-exact and timed by the stream. It ends at the end of its span; a
    decode that stops well short of the frames the file lists is corruption, said in `error`."""

    live_capable = False

    def __init__(self, path: str, span: Span = Span()):
        self.path, self.error, self.notice = path, None, None
        self.video = VideoFile(path)
        n = self.video.frame_count
        self.fps = self.video.fps if 0 < self.video.fps < 1000 else 0.0
        duration = float(self.video.index.time_s(n - 1)) if n else 0.0
        if span.start_s is not None and (n == 0 or span.start_s > duration):
            self.video.close()
            raise UsageError(f"{path}: --start {span.start_s:g} s is past its end ({duration:.2f} s)")
        self.first_index = self.video.index.frame_at(span.start_s) if span.start_s is not None else 0
        self.stop_index = self.video.index.frame_at(span.end_s) if span.end_s is not None else n
        self.total_frames = self.stop_index - self.first_index

    def frames(self, after_s: float | None = None) -> Iterator[tuple[np.ndarray, float | None]]:
        delivered = 0
        try:
            for frame in self.video.frames(self.first_index, self.stop_index):
                delivered += 1
                yield frame.bgr, frame.time_s
        except VideoError as e:
            self.error = str(e) if delivered else f"{self.path}: no frame decodes ({e})"
            return
        finally:
            self.notice = self.notice or self.video.notice
        listed, claimed = self.video.frame_count, self.video.claimed_frames
        if delivered == 0:
            self.error = f"{self.path}: no frame decodes"
        elif self.stop_index == listed and claimed > 0 and listed < 0.9 * claimed - 1:  # a header from before the cut
            self.error = f"{self.path}: decoding stopped at frame {listed} of {claimed} (corrupt or truncated file)"

    def ended(self, last_s: float | None) -> bool:
        return True

    def close(self) -> None:
        self.video.close()


class OpenCvFileDecoder:
    """A file PyAV cannot read frame-exactly, through OpenCV from its start (no span, times
    index / fps). Ending well short of the container's frame count is corruption."""

    live_capable = False
    first_index = 0

    def __init__(self, path: str, why: str):
        self.path, self.error = path, None
        self.notice = f"{why}; reading it with OpenCV from the start"
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            raise VideoError(f"{path}: cannot open as a video (not a video file, or a codec this OpenCV lacks)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps == fps and 0 < fps < 1000 else 0.0
        claimed = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total_frames = claimed if claimed > 0 else None

    def frames(self, after_s: float | None = None) -> Iterator[tuple[np.ndarray, float | None]]:
        decoded = 0
        try:
            while True:
                ok, bgr = self.cap.read()
                if not ok:
                    break
                decoded += 1
                yield bgr, None
        except cv2.error as e:
            self.error = f"{self.path}: reading failed at frame {decoded}: {e}"
            return
        claimed = self.total_frames or 0
        if decoded == 0:
            self.error = f"{self.path}: no frame decodes"
        elif claimed > 0 and decoded < 0.9 * claimed - 1 and os.path.getsize(self.path) > 0:
            self.error = f"{self.path}: decoding stopped at frame {decoded} of {claimed} (corrupt or truncated file)"

    def ended(self, last_s: float | None) -> bool:
        return True

    def close(self) -> None:
        self.cap.release()


def open_file(path: str, span: Span = Span()):
    """The file's decoder: frame-exact through PyAV, else OpenCV (which cannot take a span)."""
    try:
        return FileDecoder(path, span)
    except UsageError:
        raise
    except VideoError as e:
        if not os.path.isfile(path):
            raise
        if span:
            raise UsageError(f"{e}: --start/--end need a file that can be sought") from None
        return OpenCvFileDecoder(path, str(e))


__all__ = ["FileDecoder", "OpenCvFileDecoder", "Span", "open_file"]
