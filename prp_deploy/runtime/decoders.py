"""One connection to a source, decoding BGR frames: a file through the data layer's PyAV
reader (`file_decoder`), a webcam through OpenCV, a network stream (RTSP, HTTP, ...) through
PyAV; and how a lost one is reopened (`Reconnect`).

Network streams go through PyAV because FFmpeg's own answers are needed to tell a stream
that *ended* from one that *broke*, and OpenCV's reader hides them: measured against
GStreamer's RTSP server, the decode simply stops both when a 20 s recording ends (500
frames, last pts 19.96 s) and when the server is killed, but PyAV gives the container's
duration (20,000,000 µs from the SDP range for the recording, None for a live feed), each
frame's presentation time, a read timeout (`timeout=(open, read)`, raising ExitError) and a
refused connection at once. OpenCV's `cv2.VideoCapture` gives none of that: a recording's
end looked like an outage, and the reconnect replayed it from the start.

A connection's `frames()` stops when the source stops delivering; `ended()` then says
whether that was its end, and anything else (an exception, a stall) is an outage for the
reader to wait out (`SourceOutage`).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlparse

import cv2
import numpy as np

from ..errors import PRPError, UsageError
from .file_decoder import Span, open_file
from .source_list import mask_credentials

OPEN_TIMEOUT_S = 5.0
# PyAV's read timeout interrupts a blocked read after about twice the value given (measured
# against a server stopped with SIGSTOP: 1 → 2.1 s, 2 → 4.1 s, 4 → 8.1 s), so half the
# stall timeout is passed to keep a read within it.
READ_TIMEOUT_SHARE = 0.5


@dataclass(frozen=True)
class Reconnect:
    """How an outage is waited out: `attempts` reopens in a row (None: forever), the first
    after `wait_s`, each further one twice as long up to `max_wait_s`; every wait is jittered
    down to half, so cameras behind one switch that died together do not return in lockstep."""
    attempts: int | None = None
    wait_s: float = 1.0
    max_wait_s: float = 30.0

    def delay(self, attempt: int) -> float:
        full = min(self.max_wait_s, self.wait_s * 2 ** min(attempt - 1, 30))
        return full * random.uniform(0.5, 1.0)

    def describe(self) -> str:
        times = "forever" if self.attempts is None else f"up to {self.attempts} times"
        return f"reconnecting {times}, waits from {self.wait_s:g} s doubling to {self.max_wait_s:g} s"


class LiveClock:
    """When a live source's frames were captured, as seconds since it opened and as wall-clock
    time: the time a connection's first frame arrived, then spaced by the stream's own
    timestamps (network bursts do not bunch them), never backwards and never ahead of now.
    Each reconnect anchors again, so an outage shows as a gap, not as nothing."""

    def __init__(self) -> None:
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.anchor: float | None = None
        self.last = 0.0

    def reconnected(self) -> None:
        self.anchor = None  # a new session's timestamps start anywhere

    def time_s(self, pts: float | None) -> float:
        now = time.monotonic()
        if pts is None:
            clock = now
        else:
            if self.anchor is None:
                self.anchor = now - pts
            clock = self.anchor + pts
        self.last = min(max(clock - self.t0, self.last), now - self.t0)
        return self.last

    def wall(self, time_s: float) -> float:
        return self.wall0 + time_s


class SourceOutage(Exception):
    """The source stopped delivering without saying it ended (lost, stalled, broken): wait it out."""


class WebcamDecoder:
    """A camera device through OpenCV: it never ends by itself; a failed read is an outage."""

    live_capable = True
    error = None
    total_frames = None

    def __init__(self, index: int):
        self.index = index
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            raise PRPError(f"webcam {index}: cannot be opened (no such camera, or it is busy)")
        self.fps = _sane_fps(self.cap.get(cv2.CAP_PROP_FPS))

    def frames(self, after_s: float | None = None) -> Iterator[tuple[np.ndarray, float | None]]:
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                raise SourceOutage("the camera stopped delivering frames")
            yield bgr, None

    def ended(self, last_s: float | None) -> bool:
        return False

    def close(self) -> None:
        self.cap.release()


class NetworkDecoder:
    """One connection to a URL through PyAV (FFmpeg). A recording (the container announces a
    duration) has ended when its frames reach that duration; a live feed (no duration) never
    ends by itself, except an HTTP resource not marked live, whose body read to its end
    without an error is its end (FFmpeg raises EIO for a body cut short of its length).
    A read that blocks, or packets that decode to no frame, for `stall_s` seconds is an outage."""

    live_capable = True
    error = None

    def __init__(self, url: str, stall_s: float, live: bool, open_s: float = OPEN_TIMEOUT_S):
        import av  # here, not at import: `prp-deploy run file.mp4` never loads FFmpeg's libraries twice

        self.url, self.stall_s, self._av = url, stall_s, av
        if os.environ.get("PRP_DEPLOY_FFMPEG_LOG"):  # `prp-deploy --verbose`: FFmpeg's own messages on stderr
            av.logging.set_level(av.logging.INFO)
        scheme = urlparse(url).scheme.lower()
        options = {"rtsp_transport": "tcp"} if scheme in ("rtsp", "rtsps") else {}
        self.container = _open(av, url, options, open_s, stall_s * READ_TIMEOUT_SHARE)
        if not self.container.streams.video:
            self.container.close()
            raise PRPError(f"{mask_credentials(url)}: has no video stream")
        self.stream = self.container.streams.video[0]
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = _sane_fps(float(rate) if rate else 0.0)
        start = self.container.start_time / 1e6 if self.container.start_time is not None else 0.0
        self.end_s = start + self.container.duration / 1e6 if self.container.duration else None  # µs (AV_TIME_BASE)
        self.total_frames = round((self.end_s - start) * self.fps) if self.end_s is not None and self.fps else None
        self.bad_packets = 0  # packets that failed to decode (garbage from a camera), counted, not fatal
        self.http_resource = scheme in ("http", "https") and not live
        self.recording = self.end_s is not None or self.http_resource  # has an end, and resumes where it stopped

    def frames(self, after_s: float | None = None) -> Iterator[tuple[np.ndarray, float | None]]:
        """Frames with their presentation times, from after `after_s` on a recording (what was
        delivered before an outage is not delivered again: sought where the server can, skipped
        where it cannot)."""
        av = self._av
        if after_s is not None and self.recording:
            try:
                self.container.seek(int(after_s * 1e6), backward=True, any_frame=False)
            except av.error.FFmpegError:
                pass  # not seekable (an HTTP server without ranges): the frames up to after_s are skipped below
        last_frame_at, t = time.monotonic(), None
        skip_to = after_s if self.recording else None
        try:
            for packet in self.container.demux(self.stream):
                try:
                    decoded = packet.decode()
                except av.error.ExitError:
                    raise
                except av.error.FFmpegError:
                    self.bad_packets += 1
                    decoded = []
                for frame in decoded:
                    t = frame.time if frame.time is not None else (t + 1 / self.fps if t is not None and self.fps else None)
                    last_frame_at = time.monotonic()  # a frame skipped while resuming is progress too
                    if skip_to is not None:
                        # Delivered before the outage. A frame with no time (an RTSP server's first
                        # after a seek has none) lies before the first timed one, so before too.
                        if t is None or t <= skip_to + 1e-3:
                            continue
                        skip_to = None
                    yield frame.to_ndarray(format="bgr24"), t
                if time.monotonic() - last_frame_at > self.stall_s:
                    raise SourceOutage(f"no frame for {self.stall_s:g} s" + (f" ({self.bad_packets} packets failed to decode)" if self.bad_packets else ""))
        except av.error.ExitError:
            raise SourceOutage(f"no data for {self.stall_s:g} s") from None
        except (av.error.FFmpegError, OSError) as e:
            raise SourceOutage(f"the connection failed ({_reason(e)})") from None

    def stopped_why(self, last_s: float | None) -> str:
        """What an outage line says of a decode that stopped short of an end."""
        if self.end_s is None:
            return "the stream stopped (a live stream has no end)"
        return f"the stream stopped at {last_s or 0:.2f} s of a {self.end_s:.2f} s recording"

    def ended(self, last_s: float | None) -> bool:
        """The decode stopped where the recording's announced duration ends (within a few frames),
        or an HTTP resource's body was read to its end."""
        if self.end_s is None:
            return self.http_resource
        return last_s is not None and last_s >= self.end_s - max(3 / (self.fps or 25), 0.2)

    def close(self) -> None:
        self.container.close()


def _open(av, url: str, options: dict, open_s: float, read_s: float):
    """av.open, each way it can fail said as itself in one line (the password masked)."""
    shown, u = mask_credentials(url), urlparse(url)
    if u.hostname:  # FFmpeg says only "Input/output error" for a name that does not resolve
        try:
            socket.getaddrinfo(u.hostname, None)
        except OSError:
            raise PRPError(f"{shown}: unknown host {u.hostname}") from None
    try:
        return av.open(url, options=options, timeout=(open_s, read_s))
    except ConnectionRefusedError:
        raise PRPError(f"{shown}: connection refused (nothing listens at {u.hostname}:{u.port or 'its default port'}: "
                       "is the camera or server up?)") from None
    except (TimeoutError, av.error.ExitError):
        raise PRPError(f"{shown}: no answer within {open_s:g} s") from None
    except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError) as e:
        given = "the user name and password in the URL were refused" if u.password else "the URL gives no user name and password"
        raise PRPError(f"{shown}: unauthorized ({_reason(e)}): {given}") from None
    except av.error.HTTPNotFoundError:
        raise PRPError(f"{shown}: not found: the server has no stream at {u.path or '/'}") from None
    except (av.error.FFmpegError, OSError) as e:  # it answered: another HTTP/RTSP error, or bytes no demuxer reads
        raise PRPError(f"{shown}: cannot be opened as a video stream ({_reason(e)})") from None


def _sane_fps(fps: float) -> float:
    fps = float(fps or 0.0)
    return fps if fps == fps and 0 < fps < 1000 else 0.0


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(":")[0].strip() if text else type(e).__name__


class OpenCount:
    """Decoders open at once, now and at most: one for each run (what its --max-open bounds, in its
    summary) and one for the whole process (every decoder released once readers stop)."""

    def __init__(self):
        self.now, self.most = 0, 0
        self._lock = threading.Lock()

    def add(self, delta: int) -> None:
        with self._lock:
            self.now += delta
            self.most = max(self.most, self.now)


def open_decoder(kind: str, target, stall_s: float, live: bool = True, span: Span = Span()):
    if kind != "file" and span:
        raise UsageError(f"{mask_credentials(str(target))}: --start/--end apply to video files, not to a {kind} source")
    if kind == "webcam":
        return WebcamDecoder(int(target))
    if kind == "network":
        return NetworkDecoder(str(target), stall_s, live)
    return open_file(str(target), span)
