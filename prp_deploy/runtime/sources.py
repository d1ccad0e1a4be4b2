"""Video sources read on a thread: files, webcams, network streams.

The reader thread decodes and preprocesses (resize + center crop, uint8) into a bounded
queue, so decoding overlaps inference. A file never drops a frame: the reader waits for
room. A live source (webcam, RTSP) never falls behind real time: when the queue is full
the oldest frame is dropped and counted. A network stream that breaks is reopened a few
times with backoff, then the reader stops and says why.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from ..data.preprocess import Preprocess
from ..errors import PRPError, VideoError

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
OPEN_TIMEOUT_MS = 5000
# How long stop() waits for a reader to leave OpenCV: a file's read returns in milliseconds,
# a network read within its timeout.
JOIN_TIMEOUT_S = OPEN_TIMEOUT_MS / 1000 + 5


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "file" | "webcam" | "network"
    target: str | int  # path, camera index, or URL
    live: bool

    @property
    def name(self) -> str:
        return str(self.target)


def parse_source(source: str, live: bool | None = None) -> SourceSpec:
    """'0' → webcam 0; rtsp:// http:// ... → network; file:// or a path → file."""
    s = str(source)
    if s.isdigit():
        return SourceSpec("webcam", int(s), True if live is None else live)
    scheme = urlparse(s).scheme.lower()
    if scheme == "file":
        s = urlparse(s).path
    elif scheme in NETWORK_SCHEMES:
        return SourceSpec("network", s, (scheme not in ("http", "https")) if live is None else live)
    path = Path(s)
    if not path.exists():
        raise PRPError(f"{s}: no such file (a source is a video file, a webcam index such as 0, or an rtsp:// / http:// URL)")
    if path.is_dir():
        raise PRPError(f"{s}: is a folder, not a video")
    return SourceSpec("file", str(path), bool(live))


def open_capture(spec: SourceSpec) -> cv2.VideoCapture:
    if spec.kind == "webcam":
        cap = cv2.VideoCapture(spec.target)
        if not cap.isOpened():
            raise PRPError(f"webcam {spec.target}: cannot be opened (no such camera, or it is busy)")
        return cap
    if spec.kind == "network":
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            raise PRPError(f"{spec.target}: cannot be reached or opened within {OPEN_TIMEOUT_MS / 1000:.0f} s")
        return cap
    cap = cv2.VideoCapture(spec.target)
    if not cap.isOpened():
        raise VideoError(f"{spec.target}: cannot open as a video (not a video file, or a codec this OpenCV lacks)")
    return cap


@dataclass
class Frame:
    index: int  # source frame number (frames dropped on a live source still count)
    time_s: float  # from the source's fps, or the wall clock for a live source without one
    pixels: np.ndarray  # resized, center-cropped RGB uint8 (crop, crop, 3)
    original: np.ndarray | None  # the decoded BGR frame, kept only for an overlay
    read_at: float  # perf_counter when decoded, for latency


class FrameReader:
    """Decodes `spec` on a thread into a bounded queue of preprocessed frames."""

    END = object()

    open_now = 0  # decoders open at this moment, over all readers (what --max-open bounds)
    open_most = 0  # the most that were ever open at once
    _count_lock = threading.Lock()

    def __init__(self, spec: SourceSpec, preprocess: Preprocess, keep_original: bool = False, queue_size: int = 64,
                 reconnects: int = 3, backoff_s: float = 0.5, wake: threading.Event | None = None):
        self.spec, self.pre, self.keep_original = spec, preprocess, keep_original
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.reconnects, self.backoff_s = reconnects, backoff_s
        self.wake = wake  # set after every frame, so one loop can wait on many readers
        self.cap = open_capture(spec)  # in the caller's thread: a bad source fails at once
        self._count(+1)
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps == fps and 0 < fps < 1000 else 0.0
        claimed = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if spec.kind == "file" else 0
        self.total_frames = claimed if claimed > 0 else None  # the container's claim: progress, and a file that ends early
        self.dropped = 0
        self.frames = 0
        self.reopened = 0  # successful reconnects of a network stream
        self.error: str | None = None  # why the source ended early, if it did
        self.crash: BaseException | None = None  # a bug in the reader thread, re-raised by the consumer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prp-reader", daemon=True)
        self._t0 = time.perf_counter()

    @classmethod
    def _count(cls, delta: int) -> None:
        with cls._count_lock:
            cls.open_now += delta
            cls.open_most = max(cls.open_most, cls.open_now)

    def start(self) -> "FrameReader":
        _running.add(self)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """End the thread and, with `wait`, join it: a process must never end while a reader
        is inside OpenCV (the interpreter then kills the thread mid-C++, and the process
        aborts with "FATAL: exception not rethrown", exit 134). A reader never started
        releases its decoder here."""
        self._stop.set()
        if self._thread.ident is None:
            if self.cap is not None:
                self.cap.release()
                self.cap = None
                self._count(-1)
            return
        if wait and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        _running.discard(self)

    def _put(self, item) -> None:
        if not self.spec.live:
            while not self._stop.is_set():  # a file waits for room: every frame is processed
                try:
                    self.queue.put(item, timeout=0.1)
                    if self.wake:
                        self.wake.set()
                    return
                except queue.Full:
                    continue
            return
        while True:  # live: never wait; make room by dropping the oldest frame
            try:
                self.queue.put_nowait(item)
                if self.wake:
                    self.wake.set()
                return
            except queue.Full:
                try:
                    old = self.queue.get_nowait()
                    if old is not self.END:
                        self.dropped += 1
                except queue.Empty:
                    pass

    def _reopen(self, delivered: int) -> bool:
        """Reopen a broken network stream. A live one resumes at its live point; a recorded
        one (HTTP file) starts again from its first frame, so the frames already delivered
        are read and dropped: numbering carries on where it stopped, nothing is repeated."""
        try:
            self.cap.release()
            self.cap = open_capture(self.spec)
        except PRPError:
            return False
        for _ in range(0 if self.spec.live else delivered):
            if not self.cap.grab():
                return False
        return True

    def _at_end(self, delivered: int) -> bool:
        """A recorded network stream that delivered the frames its container claims has ended (not broken)."""
        claimed = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not self.spec.live else 0
        return claimed > 0 and delivered >= claimed

    def _run(self) -> None:
        index, attempts = 0, 0
        try:
            while not self._stop.is_set():
                ok, bgr = self.cap.read()
                if not ok:
                    if self.spec.kind == "network" and not self._at_end(index) and attempts < self.reconnects:
                        attempts += 1
                        if self._stop.wait(self.backoff_s * 2 ** (attempts - 1)):  # stopped while waiting
                            break
                        self.reopened += self._reopen(index)
                        continue
                    if self.spec.kind == "network" and not self._at_end(index):
                        self.error = (f"{self.spec.target}: the stream stopped at frame {index} and did not come back "
                                      f"after {self.reconnects} reconnects")
                    elif self.spec.kind == "webcam":
                        self.error = f"webcam {self.spec.target}: stopped delivering frames"
                    elif self.spec.kind == "file":
                        self._check_file_end(index)
                    break
                attempts = 0
                now = time.perf_counter()
                t = index / self.fps if self.fps else now - self._t0
                self._put(Frame(index, t, self.pre.frame(bgr), bgr if self.keep_original else None, now))
                index += 1
                self.frames = index
        except (cv2.error, OSError, PRPError) as e:  # the decoder or the file failed: the source ends, the consumer says why
            self.error = f"{self.spec.name}: reading failed at frame {index}: {e}"
        except BaseException as e:  # anything else is a bug: not a source error; the consumer raises it (tracebacks intact)
            self.crash = e
        finally:
            self.cap.release()
            self._count(-1)
            self._put(self.END)

    def _check_file_end(self, decoded: int) -> None:
        """A file that ends before its container's frame count (read at open), by a clear margin, is corrupt mid-way."""
        claimed = self.total_frames or 0
        if decoded == 0:
            self.error = f"{self.spec.target}: no frame decodes"
        elif claimed > 0 and decoded < 0.9 * claimed - 1 and os.path.getsize(str(self.spec.target)) > 0:
            self.error = f"{self.spec.target}: decoding stopped at frame {decoded} of {claimed} (corrupt or truncated file)"

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is self.END:
                return
            yield item


# Readers started and not yet stopped. At interpreter exit (after the main thread is done,
# before Python tears down), whatever is still running, e.g. the readers of a generator a
# script broke out of and kept, is stopped and joined.
_running: "weakref.WeakSet[FrameReader]" = weakref.WeakSet()


@atexit.register
def _stop_all_readers() -> None:
    for reader in list(_running):
        reader.stop()
