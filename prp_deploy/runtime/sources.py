"""Video sources read on a thread: files, webcams, network streams.

The reader thread decodes (`decoders`) and preprocesses (resize + center crop, uint8) into a
bounded queue, so decoding overlaps inference. A file never drops a frame: the reader waits
for room. A live source (webcam, RTSP) never falls behind real time: when the queue is full
the oldest frame is dropped and counted.

A source ends only when it says so (a file's or a recording's end). Anything else that stops
a camera or stream is an outage: the reader says so in one line, reopens it with capped
exponential backoff and jitter (forever by default, as camera pipelines do: a reboot or a
Wi-Fi drop lasts minutes), says in one line when it is back, and carries on numbering
where it stopped; a recording resumes after the last frame it delivered.
"""

from __future__ import annotations

import atexit
import collections
import queue
import threading
import time
import weakref
from dataclasses import dataclass

import cv2
import numpy as np

from ..data.preprocess import Preprocess
from ..errors import PRPError
from .decoders import OPEN_TIMEOUT_S, LiveClock, OpenCount, Reconnect, SourceOutage, open_decoder
from .file_decoder import Span
from .source_list import SourceSpec

STALL_TIMEOUT_S = 10.0


@dataclass
class Frame:
    index: int  # source frame number (frames dropped on a live source still count)
    time_s: float  # a file's: its presentation time (from the first frame's); a live source's: its capture clock (LiveClock)
    pixels: np.ndarray  # resized, center-cropped RGB uint8 (crop, crop, 3)
    original: np.ndarray | None  # the decoded BGR frame, kept only for an overlay
    read_at: float  # perf_counter when decoded, for latency
    wall: float | None = None  # a live source's capture time, Unix seconds (None for a file)


class FrameReader:
    """Decodes `spec` on a thread into a bounded queue of preprocessed frames. `open_count`: the
    run's count of open decoders (the process's, `FrameReader.process_open`, counts it too)."""

    END = object()
    process_open = OpenCount()

    def __init__(self, spec: SourceSpec, preprocess: Preprocess, keep_original: bool = False, queue_size: int = 64,
                 reconnect: Reconnect | None = None, stall_s: float = STALL_TIMEOUT_S, wake: threading.Event | None = None,
                 span: Span = Span(), open_count: OpenCount | None = None):
        self._open_counts = (FrameReader.process_open, *((open_count,) if open_count is not None else ()))
        self.spec, self.pre, self.keep_original = spec, preprocess, keep_original
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.stall_s = stall_s
        self.decoder = open_decoder(spec.kind, spec.target, stall_s, spec.live, span)  # in the caller's thread: a bad source fails at once
        self.first_index = getattr(self.decoder, "first_index", 0)  # a file read from --start numbers frames as the file does
        # Files never reconnect; cameras and streams wait out an outage, forever unless told otherwise.
        self.reconnect = (reconnect or Reconnect()) if self.decoder.live_capable else Reconnect(attempts=0)
        self.wake = wake  # set after every frame and notice, so one loop can wait on many readers
        self._count(+1)
        self.fps = self.decoder.fps
        self.total_frames = self.decoder.total_frames  # the container's claim: progress, and a file that ends early
        self.dropped = 0
        self.frames = 0  # frames delivered
        self.reopened = 0  # successful reopens
        self.outages = 0  # times the source stopped delivering without ending
        self.outage_s = 0.0  # seconds without frames, over all outages that ended
        self.attempts = 0  # reopen attempts over all outages
        self.last_frame_at: float | None = None  # perf_counter() of the last frame delivered
        self.notices: collections.deque[str] = collections.deque()  # one-line news for the consumer to print
        self.error: str | None = None  # why the source ended early, if it did
        self._notice_said = False
        self.crash: BaseException | None = None  # a bug in the reader thread, re-raised by the consumer
        self._outage: tuple[float, int] | None = None  # (monotonic start, attempts so far) of the outage in progress
        self._last_s: float | None = None  # presentation time of the last frame delivered (resumes a recording)
        self._shape: tuple[int, ...] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prp-reader", daemon=True)
        self._t0 = time.perf_counter()
        self.clock = LiveClock() if spec.live else None

    def _count(self, delta: int) -> None:
        for count in self._open_counts:
            count.add(delta)

    @property
    def join_timeout_s(self) -> float:
        """How long stop() waits for the thread to leave the decoder: an open returns within its
        timeout, a network read within the stall timeout, a file's read in milliseconds."""
        return max(OPEN_TIMEOUT_S, self.stall_s) + 5

    def start(self) -> "FrameReader":
        _running.add(self)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """End the thread and, with `wait`, join it: a process must never end while a reader
        is inside a decoder (the interpreter then kills the thread mid-C++, and the process
        aborts with "FATAL: exception not rethrown", exit 134). A reader never started
        releases its decoder here."""
        self._stop.set()
        if self._thread.ident is None:
            if self.decoder is not None:
                self.decoder.close()
                self.decoder = None
                self._count(-1)
            return
        if wait and self._thread is not threading.current_thread():
            self._thread.join(self.join_timeout_s)
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

    def _say(self, text: str) -> None:
        self.notices.append(f"{self.spec.name}: {text}")
        if self.wake:
            self.wake.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                cause = self._deliver()
                if cause is None or not self._wait_out(cause):
                    break
        except (cv2.error, OSError, PRPError) as e:  # the decoder failed outside an outage: the source ends, the consumer says why
            self.error = f"{self.spec.name}: reading failed at frame {self.frames}: {e}"
        except BaseException as e:  # anything else is a bug: not a source error; the consumer raises it (tracebacks intact)
            self.crash = e
        finally:
            if self._outage is not None:  # stopped mid-outage: its time so far counts
                self.outage_s += time.monotonic() - self._outage[0]
            if self.decoder is not None:  # None when stopped after a reopen that failed
                self.decoder.close()
                self.decoder = None
            self._count(-1)  # this reader's slot, whether or not a decoder is open now
            self._put(self.END)

    def _deliver(self) -> str | None:
        """Frames from the open decoder until it stops: None if the source ended, else why not."""
        new = 0
        resumed = self._last_s is not None
        self._say_decoder_notice()
        try:
            for bgr, t in self.decoder.frames(after_s=self._last_s):
                if self._stop.is_set():
                    return None
                new += 1
                if self._outage is not None:
                    self._back()
                self._frame(bgr, t)
        except SourceOutage as e:
            return str(e)
        self._say_decoder_notice()
        if self.decoder.error:
            self.error = self.decoder.error
            return None
        # A recording reopened after an outage with nothing after what it had delivered has ended too.
        if self.decoder.ended(self._last_s) or (resumed and new == 0 and getattr(self.decoder, "recording", False)):
            return None
        return self.decoder.stopped_why(self._last_s) if self.spec.kind == "network" else "the source stopped"

    def _frame(self, bgr: np.ndarray, t: float | None) -> None:
        first = self._shape is None
        if not first and bgr.shape != self._shape[-1]:  # a camera reconfigured: the model's view is resized anyway
            self._say(f"resolution changed from {self._shape[-1][1]}x{self._shape[-1][0]} to {bgr.shape[1]}x{bgr.shape[0]} "
                      f"at frame {self.frames}")
        self._shape = (bgr.shape, bgr.shape) if first else (self._shape[0], bgr.shape)  # (the first, the current)
        original = None
        if self.keep_original:  # an overlay keeps the size it started with
            h, w = self._shape[0][:2]
            original = bgr if bgr.shape[:2] == (h, w) else cv2.resize(bgr, (w, h))
        now = time.perf_counter()
        index = self.first_index + self.frames
        if self.clock is not None:
            time_s = self.clock.time_s(t)
            wall = self.clock.wall(time_s)
        elif t is not None:
            time_s, wall = t, None
        else:
            time_s, wall = (index / self.fps if self.fps else now - self._t0), None
        self._put(Frame(index, time_s, self.pre.frame(bgr), original, now, wall))
        if t is not None:
            self._last_s = t
        self.frames += 1
        self.last_frame_at = now

    def _say_decoder_notice(self) -> None:
        notice = getattr(self.decoder, "notice", None)
        if notice and not self._notice_said:
            self._notice_said = True
            self._say(notice.removeprefix(f"{self.spec.target}: "))

    def _wait_out(self, cause: str) -> bool:
        """Reopen the source after `cause` until it is back (True), or give up or stop (False)."""
        policy = self.reconnect
        if policy.attempts == 0:
            self.error = f"{self.spec.name}: {cause} at frame {self.frames}" + (
                "" if self.spec.kind == "file" else " (reconnecting is off: --reconnect 0)")
            return False
        if self._outage is None:
            self._outage = (time.monotonic(), 0)
            self.outages += 1
            self._say(f"outage at frame {self.frames}: {cause}; {policy.describe()}")
        started, tries = self._outage
        while not self._stop.is_set():
            if policy.attempts is not None and tries >= policy.attempts:
                self.error = (f"{self.spec.name}: the stream stopped at frame {self.frames} ({cause}) and did not come back "
                              f"after {tries} reconnects in {time.monotonic() - started:.1f} s")
                return False
            tries += 1
            self.attempts += 1
            self._outage = (started, tries)
            if self._stop.wait(policy.delay(tries)):
                return False
            if self.decoder is not None:  # None after a reopen that failed
                self.decoder.close()
                self.decoder = None
            try:
                self.decoder = open_decoder(self.spec.kind, self.spec.target, self.stall_s, self.spec.live)
            except PRPError as e:
                cause = str(e).split(": ", 1)[-1]
                continue
            self.reopened += 1
            if self.clock is not None:
                self.clock.reconnected()
            return True
        return False

    def outage_now_s(self) -> float:
        """Seconds into the outage in progress (0 when there is none); for a reader in another thread."""
        outage = self._outage  # one read: the reader thread may end it meanwhile
        return 0.0 if outage is None else time.monotonic() - outage[0]

    def _back(self) -> None:
        started, tries = self._outage
        took = time.monotonic() - started
        self.outage_s += took
        self._outage = None
        self._say(f"back after {took:.1f} s ({tries} reconnect attempt{'s' if tries != 1 else ''}); "
                  f"carrying on at frame {self.frames}")


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
