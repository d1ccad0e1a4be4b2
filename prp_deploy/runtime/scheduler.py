"""Many sources through one engine: one reader thread per open source, one loop that
batches windows *across* sources into each engine call.

The loop drains whatever frames the readers have decoded, turns them into windows (each
source its own `Windower`), and sends a batch when it is full, or, when no frame arrived
since the last look, what it has: at once if a live source is open (never hold a camera
back to fill a batch), else after `BATCH_WAIT_S` (files wait a moment for a fuller batch).
Sources open on a small thread pool, so one that is slow to answer does not stop the
sources already running (OpenCV still serialises the opens themselves).
A batch takes windows round-robin from the sources, starting one further each time, so
no source starves. At most `max_open` sources are open at once (a folder of 10,000 files
does not open 10,000 decoders); the next one opens when one ends.

Back-pressure is per source: the loop takes a source's frames only while fewer than one
batch of its windows wait. A file's reader then blocks (no frame is lost); a live one
drops its oldest frames, as a single live source does. A source that fails (cannot
open, corrupt, a stream that dies) is closed with its reason; the others carry on.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..errors import PRPError, UsageError
from .model_info import ModelInfo
from .stopping import StopRequest
from .options import RunOptions, resolve_sample_rate
from .source_list import mask_credentials, parse_source
from .decoders import OpenCount
from .sources import Frame, FrameReader
from .stream import StreamStats, Window, Windower, top_k

BATCH_WAIT_S = 0.05  # how long a partial batch of file windows waits for more


@dataclass
class Source:
    name: str  # as given (a path, a webcam index, a URL), a URL's password masked: what records, lines and files show
    stem: str = ""  # its output files' name
    status: str = "queued"  # queued → open → ok | failed
    error: str | None = None
    stats: StreamStats = field(default_factory=StreamStats)
    reader: FrameReader | None = None
    windower: Windower | None = None
    pending: collections.deque = field(default_factory=collections.deque)
    ended: bool = False
    started: float = 0.0
    span: int = 0  # source frames one window covers
    stopped: bool = False  # closed by a stop request, not by its own end
    target: str = ""  # what is opened: the name with its credentials (default: the name as given)
    usage_error: bool = False  # it failed on how it was asked for (--start past its end), not on its content

    def __post_init__(self) -> None:
        self.target = self.target or self.name
        self.name = mask_credentials(self.name)

    @property
    def live(self) -> bool:
        return self.reader is not None and self.reader.spec.live


@dataclass
class Event:
    """What the loop reports: a source opened or closed, or its windows of one batch."""
    kind: str  # "open" | "windows" | "close"
    source: Source
    records: list[dict] = field(default_factory=list)
    features: np.ndarray | None = None  # (n, D) with --task features or both
    logits: np.ndarray | None = None  # (n, classes) for a recogniser
    maps: np.ndarray | None = None  # (n, T', H', W'): the top class's activation map, when the engine is the explain graph


def _opened(opening: dict[Future, Source], active: list[Source]) -> Iterator[Event]:
    """The sources whose open has finished: running ("open", now active) or failed ("close")."""
    for future in [f for f in opening if f.done()]:
        src = opening.pop(future)
        if future.result():  # a bug in opening raises here, in the caller's thread
            active.append(src)
            yield Event("open", src)
        else:
            yield Event("close", src)


def schedule(sources: list[Source], info: ModelInfo, backend, opts: RunOptions, max_open: int = 4,
             on_frame: Callable[[Source, Frame], None] | None = None, keep_original: bool = False,
             say: Callable[[str], None] = lambda s: None, stop: StopRequest | None = None,
             open_count: OpenCount | None = None) -> Iterator[Event]:
    """Run every source through `backend`, yielding events in the order they happen. Once `stop`
    is requested, reading ends, the windows already made are run and every open source closes.
    `open_count` counts this schedule's open decoders (a run's summary reports the most)."""
    opts.check(info)
    if max_open < 1:
        raise PRPError(f"--max-open must be >= 1, got {max_open}")
    cap = min(opts.batch, getattr(backend, "max_batch", None) or opts.batch)
    waiting = collections.deque(sources)
    active: list[Source] = []
    wake = threading.Event()
    # Sources open on their own threads: a camera or URL that does not answer holds up only
    # itself (for its open timeout), not the sources already running. (OpenCV serialises
    # FFmpeg's opens behind one lock, so other sources still *opening* wait for it.)
    opener = ThreadPoolExecutor(max_workers=max_open, thread_name_prefix="prp-open")
    opening: dict[Future, Source] = {}
    turn, last_progress = 0, time.perf_counter()
    try:
        while waiting or active or opening:
            if stop is not None and stop.is_set():
                yield from _stop_now(active, info, backend, opts, cap, stop, say)
                return
            while waiting and len(active) + len(opening) < max_open:
                src = waiting.popleft()
                future = opener.submit(_open, src, info, opts, keep_original, wake, say, open_count)
                future.add_done_callback(lambda _: wake.set())
                opening[future] = src
            yield from _opened(opening, active)
            wake.clear()  # before looking: a frame (or an open) that arrives after this sets it again
            progressed = False
            for src in active:
                progressed |= _pull(src, cap, on_frame, say)
            for src in [s for s in active if s.ended and not s.pending]:
                active.remove(src)
                _close(src, say)
                yield Event("close", src)
            now = time.perf_counter()
            if progressed:
                last_progress = now
            ready = sum(len(s.pending) for s in active)
            stalled = not progressed and (any(s.live for s in active) or all(s.ended for s in active) or now - last_progress >= BATCH_WAIT_S)
            if ready >= cap or (ready and stalled):
                group = _take(active, cap, turn)
                turn += 1
                yield from _infer(group, info, backend, opts)
            elif not progressed and not any(f.done() for f in opening):
                wake.wait(BATCH_WAIT_S)
    finally:
        for future in opening:
            future.cancel()
        opener.shutdown(wait=True)  # an open in progress finishes (within its timeout); its reader is stopped below
        for src in [*active, *opening.values()]:
            if src.reader is not None:
                src.reader.stop()


def _open(src: Source, info: ModelInfo, opts: RunOptions, keep_original: bool, wake, say, open_count: OpenCount | None = None) -> bool:
    src.started = time.perf_counter()
    try:
        spec = parse_source(src.target, opts.live)
        src.reader = FrameReader(spec, info.preprocess, keep_original=keep_original, reconnect=opts.reconnect_policy,
                                 stall_s=opts.stall_timeout, wake=wake, span=opts.span, open_count=open_count)
    except PRPError as e:
        src.status, src.error, src.usage_error = "failed", str(e), isinstance(e, UsageError)
        return False
    step = resolve_sample_rate(opts.sample_rate, info, src.reader.fps, say)
    stride = opts.stride or max(1, (info.preprocess.frames // 2) * step)
    src.windower = Windower(info.preprocess.frames, step, stride, spec.live, src.reader.fps)
    src.span = src.windower.span
    src.status = "open"
    src.reader.start()
    return True


def _pull(src: Source, cap: int, on_frame, say) -> bool:
    """Move decoded frames into windows while fewer than a batch of this source's windows wait;
    print what the reader had to say (an outage, its end), in the loop's thread."""
    while src.reader.notices:
        say(src.reader.notices.popleft())
    got = False
    while len(src.pending) < cap and not src.ended:
        try:
            item = src.reader.queue.get_nowait()
        except queue.Empty:
            break
        got = True
        if item is FrameReader.END:
            src.ended = True
            src.pending.extend(src.windower.finish())
            break
        if on_frame is not None:
            on_frame(src, item)
        src.pending.extend(src.windower.push(item))
    return got


def _take(active: list[Source], cap: int, turn: int) -> list[tuple[Source, Window]]:
    """Up to `cap` windows, one from each source in turn (starting one source further each batch)."""
    order = [active[(turn + i) % len(active)] for i in range(len(active))]
    group: list[tuple[Source, Window]] = []
    while len(group) < cap and any(s.pending for s in order):
        for s in order:
            if s.pending and len(group) < cap:
                group.append((s, s.pending.popleft()))
    return group


def _infer(group: list[tuple[Source, Window]], info: ModelInfo, backend, opts: RunOptions) -> Iterator[Event]:
    x = np.stack([w.tensor(info) for _, w in group])
    t0 = time.perf_counter()
    out = backend.run(x)
    now = time.perf_counter()
    share = (now - t0) / len(group)
    by_source: dict[int, list[int]] = {}
    for i, (src, _) in enumerate(group):
        by_source.setdefault(id(src), []).append(i)
    for rows in by_source.values():
        src = group[rows[0]][0]
        records = []
        for i in rows:
            w = group[i][1]
            r = {"source": src.name, "window": w.number, "start_frame": w.start_frame, "end_frame": w.end_frame,
                 "start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4)}
            if w.wall_time is not None:
                r["wall_time"] = w.wall_time
            if opts.task != "features":
                r["top"] = top_k(out["logits"][i], info.classes, opts.topk)
            if w.padded:
                r["padded"] = w.padded
                src.stats.padded_windows += 1
            src.stats.latencies.append(now - w.frames[-1].read_at)
            records.append(r)
        logits = out["logits"][rows] if "logits" in out else None
        if logits is not None:
            s = logits.sum(0)
            src.stats.logits_sum = s if src.stats.logits_sum is None else src.stats.logits_sum + s
        src.stats.windows += len(rows)
        src.stats.inference_s += share * len(rows)
        feats = out["features"][rows] if opts.task != "recognize" and "features" in out else None
        maps = None
        if "cam" in out and logits is not None:  # model_explain.onnx (run --overlay-explain): each window's top class's map
            maps = out["cam"][rows][np.arange(len(rows)), logits.argmax(1)]
        yield Event("windows", src, records, feats, logits, maps)


def _stop_now(active: list[Source], info: ModelInfo, backend, opts: RunOptions, cap: int, stop: StopRequest, say) -> Iterator[Event]:
    """The graceful stop: readers stopped and joined (their counts final), the complete windows
    already made run in batches (a half-filled one is dropped, not padded), each source closed."""
    say(f"{stop.reason}: stopping; the windows in flight are finished and every output closed (again to stop at once)")
    for src in active:
        src.reader.stop()
        src.stopped = True
    turn = 0
    while any(s.pending for s in active):
        yield from _infer(_take(active, cap, turn), info, backend, opts)
        turn += 1
    for src in list(active):
        active.remove(src)
        _close(src, say)
        yield Event("close", src)


def _close(src: Source, say) -> None:
    r = src.reader
    if r.crash is not None:  # a bug in the reader thread surfaces here, as itself, not as a failed source
        raise r.crash
    st = src.stats
    while r.notices:
        say(r.notices.popleft())
    st.frames, st.dropped_frames, st.reconnects = r.frames, r.dropped, r.reopened
    st.outages, st.outage_s, st.reconnect_attempts = r.outages, r.outage_s, r.attempts
    st.wall_s = time.perf_counter() - src.started
    src.status, src.error = ("failed", r.error) if r.error else ("ok", None)
    if st.windows and st.padded_windows and r.frames < src.span:
        say(f"{src.name}: {r.frames} frames, shorter than one window of {src.span}: padded by repeating the last frame")
    src.windower, src.reader = None, None  # a folder of 10,000 sources keeps their stats, not their last frames


__all__ = ["Event", "Source", "schedule"]
