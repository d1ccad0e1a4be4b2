"""A graceful stop: what SIGTERM (systemd, Docker), SIGHUP and Ctrl-C ask of a run.

The first signal asks: reading ends, the windows already made are run, every output is
closed whole, the summary is written and printed, and the process exits 128 + the signal's
number (143 for SIGTERM, 130 for SIGINT). A second signal stops at once. An application that
embeds the runtime asks the same with `StopRequest.request()` from any thread.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class StopRequest:
    """Set once, from a signal handler or another thread; read by the scheduler's loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None  # "SIGTERM", or the application's words
        self.signum: int | None = None

    def request(self, reason: str = "stop requested", signum: int | None = None) -> None:
        if not self._event.is_set():
            self.reason, self.signum = reason, signum
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signum if self.signum is not None else None


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """While inside, SIGINT, SIGTERM and SIGHUP request a graceful stop; the second one exits at
    once with 128 + its number (the `finally` blocks still close what is open). Nothing is
    printed here: a handler that writes can land inside another write of the main thread."""

    def handler(signum, frame):
        if stop.is_set():
            raise SystemExit(128 + signum)
        stop.request(signal.Signals(signum).name, signum)

    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield stop
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


__all__ = ["SIGNALS", "StopRequest", "stop_on_signals"]
