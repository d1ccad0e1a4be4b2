"""Window scores → action segments: when each action happened, not a record per window.

Per class, the window probabilities are smoothed over time by a centred moving average of
`smooth` windows (so a decision waits `smooth // 2` windows, and a boundary is not shifted
the way a trailing average shifts it). A segment of a class opens when its smoothed score
reaches `threshold` and closes when it falls below `hysteresis` (a lower level, so a score
hovering at the threshold does not flicker open and shut). Segments held by fewer than
`min_windows` windows are dropped as spurious.

Time: windows overlap, so each window stands for the stretch between the midpoints of its
centre and its neighbours' centres (the first from its start, the last to its end); a
segment spans the stretches of its windows. With stride s, a cut is placed to within s.
Torch-free and usable alone: feed it `push(start_frame, end_frame, start_s, end_s, probs)`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from ..errors import PRPError


@dataclass
class Segment:
    number: int
    label: str
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float
    score: float  # mean smoothed score of the class over the segment's windows

    def record(self, source: str) -> dict:
        return {"source": source, "segment": self.number, "label": self.label, "start_s": round(self.start_s, 4),
                "end_s": round(self.end_s, 4), "start_frame": self.start_frame, "end_frame": self.end_frame, "score": round(self.score, 6)}


@dataclass
class _Open:
    """A segment still open: where it starts, where its last window's stretch ends, its score so far."""
    start_frame: float
    start_s: float
    end_frame: float
    end_s: float
    score_sum: float = 0.0
    windows: int = 0


@dataclass
class _Win:
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    probs: np.ndarray

    @property
    def centre(self) -> tuple[float, float]:
        return (self.start_frame + self.end_frame) / 2, (self.start_s + self.end_s) / 2


class Segmenter:
    """Window scores in, action segments out, as they close. `push` (or `push_record` with a
    record of `Recognizer.stream`) returns the segments that closed; `finish()` at the end
    of the source closes the ones still open."""

    def __init__(self, classes, smooth: int = 3, threshold: float = 0.5, hysteresis: float = 0.3, min_windows: int = 2):
        if smooth < 1 or min_windows < 1:
            raise PRPError(f"--smooth and --min-windows must be >= 1, got {smooth}, {min_windows}")
        if not 0 < threshold <= 1 or not 0 <= hysteresis <= threshold:
            raise PRPError(f"need 0 <= hysteresis <= threshold <= 1, got threshold {threshold}, hysteresis {hysteresis}")
        self.classes = tuple(classes)
        self.half, self.threshold, self.hysteresis, self.min_windows = smooth // 2, threshold, hysteresis, min_windows
        self.recent: collections.deque[_Win] = collections.deque()  # the windows a smoothed score still needs
        self.decided = 0  # windows whose smoothed score is known
        self.seen = 0
        self.prev: _Win | None = None  # the last decided window (its stretch ends at the next one's midpoint)
        self.prev_scores: np.ndarray | None = None
        self.prev_bounds: tuple[float, float] | None = None  # where the last decided window's stretch starts
        self.open: dict[int, _Open] = {}  # class index → its open segment
        self.count = 0

    def push(self, start_frame: int, end_frame: int, start_s: float, end_s: float, probs) -> list[Segment]:
        """Feed the next window's class probabilities; returns the segments that closed."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (len(self.classes),):
            raise PRPError(f"expected {len(self.classes)} class scores, got shape {probs.shape}")
        self.recent.append(_Win(start_frame, end_frame, start_s, end_s, probs))
        self.seen += 1
        closed = []
        while self.decided + self.half < self.seen:  # window `decided` has all the neighbours its average needs
            closed += self._decide()
        return closed

    def push_record(self, record: dict) -> list[Segment]:
        """Feed a window record of `Recognizer.stream` / `stream_many` (it carries `probs`, every class's probability)."""
        if "probs" not in record:
            raise PRPError("this record has no 'probs': use the records of Recognizer.stream or stream_many (a recognizer's)")
        return self.push(record["start_frame"], record["end_frame"], record["start_s"], record["end_s"], record["probs"])

    def finish(self) -> list[Segment]:
        """The source ended: decide the remaining windows and close every open segment."""
        closed = []
        while self.decided < self.seen:
            closed += self._decide()
        if self.prev is not None:
            closed += self._step(self.prev, None, self.prev_scores)
            self.prev = None
        return closed

    def _decide(self) -> list[Segment]:
        i = self.decided - (self.seen - len(self.recent))  # position of window `decided` in `recent`
        lo, hi = max(0, i - self.half), min(len(self.recent), i + self.half + 1)
        smoothed = np.mean([w.probs for w in list(self.recent)[lo:hi]], axis=0)
        win = self.recent[i]
        self.decided += 1
        while len(self.recent) > 2 * self.half + 1:  # older windows no longer enter any average
            self.recent.popleft()
        out = []
        if self.prev is not None:
            out = self._step(self.prev, win, self.prev_scores)
        self.prev, self.prev_scores = win, smoothed
        return out

    def _step(self, win: _Win, nxt: _Win | None, smoothed: np.ndarray) -> list[Segment]:
        """Window `win` is decided and its successor known: its stretch is complete, apply the rules."""
        if self.prev_bounds is None:
            self.prev_bounds = (float(win.start_frame), win.start_s)
        start_f, start_s = self.prev_bounds
        if nxt is None:
            end_f, end_s = float(win.end_frame), win.end_s
        else:
            (cf, cs), (nf, ns) = win.centre, nxt.centre
            end_f, end_s = (cf + nf) / 2, (cs + ns) / 2
        self.prev_bounds = (end_f, end_s)
        closed = []
        for c, score in enumerate(smoothed):
            seg = self.open.get(c)
            if seg is None and score >= self.threshold:
                self.open[c] = seg = _Open(start_f, start_s, end_f, end_s)
            if seg is not None and score >= self.hysteresis:
                seg.score_sum += score
                seg.windows += 1
                seg.end_frame, seg.end_s = end_f, end_s
            elif seg is not None:
                closed += self._close(c)
        if nxt is None:
            for c in list(self.open):
                closed += self._close(c)
        return closed

    def _close(self, c: int) -> list[Segment]:
        seg = self.open.pop(c)
        if seg.windows < self.min_windows:
            return []
        self.count += 1
        return [Segment(self.count - 1, self.classes[c], int(round(seg.start_frame)), int(round(seg.end_frame)), seg.start_s, seg.end_s,
                        seg.score_sum / seg.windows)]


__all__ = ["Segment", "Segmenter"]
