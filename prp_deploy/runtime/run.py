"""`prp-deploy run`: sources through the model, records out. Used by the CLI, by
`Recognizer.stream` / `stream_many` and by `bench`.

One source (a file, webcam or URL) writes where it is told: `--out FILE.jsonl`,
`--features FILE.npy`, `--overlay FILE.mp4`, and fails the command if it fails. Several
(or a folder, glob or @list) share one engine through the scheduler and each writes its
own files in the folders given: `DIR/<stem>.jsonl`, `<stem>.segments.jsonl`,
`<stem>.features.npy`, `<stem>.overlay.mp4`; a source that fails is reported and the
others carry on. `DIR/sources.jsonl` gets a line as each source finishes and
`DIR/summary.json` the whole run at the end; `--skip-done` reads the first to skip the
sources a crashed or interrupted run already finished.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from ..errors import PRPError, UsageError
from ..files import atomic_write
from ..paths import newest_export
from . import backends
from .backends import check_backend_matches, open_backend
from .model_info import ModelInfo, read_model_info
from .output_paths import done_before, model_files, plan_outputs, wants_many
from .outputs import SourceSink
from .overlay import crop_box_of
from .progress import Progress
from .options import RunOptions
from .scheduler import Source, schedule
from .segments import Segmenter
from .source_list import expand_sources, mask_credentials, output_stems
from .sources import FrameReader
from .stream import StreamStats, softmax
from .stopping import StopRequest
from .metrics import RunMetrics, start_metrics
from .summary import run_header, source_row, totals

DEFAULT_MAX_OPEN = 2 * (os.cpu_count() or 2)


class StreamError(PRPError):
    """The source died mid-way; what was produced before is kept. From `run`, `summary` is the
    run's summary (written, and for the caller to print) as when it succeeds."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


@dataclass
class SegmentOptions:
    smooth: int = 3  # windows in the centred moving average
    threshold: float = 0.5  # a segment opens when a class's smoothed score reaches this
    hysteresis: float = 0.3  # ... and closes when it falls below this
    min_windows: int = 2  # shorter segments are dropped

    def segmenter(self, classes) -> Segmenter:
        return Segmenter(classes, self.smooth, self.threshold, self.hysteresis, self.min_windows)


@dataclass
class RunOutputs:
    # Paths as given (str or Path): a str keeps its trailing slash, which names a folder.
    out: Path | None = None  # JSONL file (one source) or folder (several); None: stdout
    features: Path | None = None
    overlay: Path | None = None
    overlay_explain: bool = False  # blend the top class's activation map into the overlay (runs model_explain.onnx)
    segments: SegmentOptions | None = None
    format: str = "auto"  # stdout without --out: "text" (a short line each) on a terminal, else "jsonl"
    skip_done: bool = False
    max_open: int = DEFAULT_MAX_OPEN
    progress: bool = True  # bars on stderr when it is a terminal
    many: bool | None = None  # per-source files in folders; None: when there are several sources (or a folder, glob, @list)
    metrics: int | None = None  # serve Prometheus metrics on this port while the run lasts (0: any free port)
    metrics_host: str = "127.0.0.1"


def find_model(model: str | Path | None, say: Callable[[str], None]) -> Path:
    """--model, else the newest export under runs/ (and say which)."""
    if model is not None:
        return Path(model)
    found = newest_export()
    say(f"using the newest export: {found}")
    return found


def stream_many(sources: list[str], info: ModelInfo, backend, opts: RunOptions, max_open: int = DEFAULT_MAX_OPEN,
                say: Callable[[str], None] = lambda s: None, failed: Callable[[Source], None] | None = None,
                arrays: bool = False, stop: StopRequest | None = None, metrics: RunMetrics | None = None) -> Iterator[dict]:
    """Every window record of every source, as they come; a failed source goes to `failed` (default: ignored).
    `arrays`: each record also carries its numpy `features` (D,) and `probs` (classes,) (the Python API).
    `metrics`: an endpoint that watches these sources and times the engine, closed when the stream ends.
    Closing the generator (or dropping it) stops and joins the readers."""
    todo = [Source(s) for s in sources]
    yield from _records(schedule(todo, info, _watched(metrics, todo, backend), opts, max_open, say=say, stop=stop), arrays, failed,
                        metrics)


def stream_records(source: str, info: ModelInfo, backend, opts: RunOptions, stats: StreamStats | None = None,
                   say: Callable[[str], None] = lambda s: None, arrays: bool = False, stop: StopRequest | None = None,
                   metrics: RunMetrics | None = None) -> Iterator[dict]:
    """One source's window records; raises StreamError (after its records) if it fails."""
    src = Source(str(source), stats=stats or StreamStats())
    yield from _records(schedule([src], info, _watched(metrics, [src], backend), opts, 1, say=say, stop=stop), arrays, metrics=metrics)
    if src.status == "failed":
        raise UsageError(src.error) if src.usage_error else StreamError(src.error)


def _watched(metrics: RunMetrics | None, sources: list[Source], backend):
    if metrics is None:
        return backend
    metrics.watch(sources)
    return metrics.timed(backend)


def _records(events, arrays: bool, failed: Callable[[Source], None] | None = None, metrics: RunMetrics | None = None) -> Iterator[dict]:
    """The window records of scheduler events; a failed source goes to `failed`. Closing this
    generator closes the scheduler's, which stops and joins its readers (and the metrics endpoint)."""
    with closing(events), (closing(metrics) if metrics is not None else nullcontext()):
        for ev in events:
            if ev.kind == "windows":
                yield from (with_arrays(ev) if arrays else ev.records)
            elif ev.kind == "close" and ev.source.status == "failed" and failed is not None:
                failed(ev.source)


def with_arrays(ev) -> list[dict]:
    """The event's records, each with its own row of the features and class probabilities (numpy)."""
    probs = softmax(ev.logits) if ev.logits is not None else None
    out = []
    for i, r in enumerate(ev.records):
        r = dict(r)
        if ev.features is not None:
            r["features"] = ev.features[i].copy()
        if probs is not None and "top" in r:  # a recognition record (not --task features)
            r["probs"] = probs[i].copy()
        out.append(r)
    return out


def run(sources: str | list[str], model: str | Path | None = None, backend: str = "auto", opts: RunOptions = RunOptions(),
        out: Path | None = None, features: Path | None = None, overlay: Path | None = None,
        say: Callable[[str], None] = lambda s: None, reference: Callable[[Path], tuple] | None = None,
        precision: str | None = None, outputs: RunOutputs | None = None, allow_unverified: bool = False,
        stop: StopRequest | None = None) -> dict:
    """Run the sources through the model, writing records, features, overlays and segments; returns
    {"backend", "sources": [a row per source], "totals"}. One source that fails raises StreamError
    (after writing what it could); with several, failures are rows with status "failed".

    `backend="torch"` needs `reference`, a function model path → (ModelInfo, backend) that
    the caller brings (the CLI passes export's torch reference): the runtime itself never
    imports torch or the model code.

    Only a model file that parity passed is served (`artifacts.verdict`); `allow_unverified`
    runs another anyway, with a warning, and the summary says `"verified": false`.
    """
    o = outputs or RunOutputs()
    o = replace(o, out=out or o.out, features=features or o.features, overlay=overlay or o.overlay)  # the caller's object stays as given
    args = [sources] if isinstance(sources, (str, Path)) else [str(s) for s in sources]
    # Names as shown (a URL's password masked) from here on; `target` keeps what is opened.
    target_of = {mask_credentials(n): n for n in expand_sources([str(a) for a in args])}
    names = list(target_of)
    many = wants_many(args, names, [o.out, o.features, o.overlay]) if o.many is None else o.many
    if o.features is not None and opts.task == "recognize":
        raise UsageError("--features needs --task features or both")
    if o.skip_done and not (many and o.out is not None):
        raise UsageError("--skip-done needs --out DIR (it reads DIR/sources.jsonl) and several sources")
    model_path = find_model(model, say)
    starts_before = backends.engine_starts
    if not Path(model_path).exists():
        raise PRPError(f"{model_path}: no such model")
    skip = done_before(Path(o.out)) if o.skip_done else {}
    todo_names = [n for n in names if n not in skip]
    # Every output path, decided and checked for clashes before the model opens or a file is written.
    stem_of = dict(zip(names, output_stems(names)))  # over every source, so a skipped one keeps its name's place
    plan = plan_outputs(todo_names, [stem_of[n] for n in todo_names], many, o.out, o.features, o.overlay, o.segments is not None,
                        protected=model_files(Path(model_path)))
    if backend == "torch":
        if reference is None:
            raise PRPError("the torch backend needs the model code: use `prp-deploy run --backend torch`")
        info, engine = reference(model_path)
    else:
        info = read_model_info(model_path)
        if o.overlay_explain:  # the explain graph gives the same logits and features, and the maps
            if o.overlay is None:
                raise UsageError("--overlay-explain draws on the overlay: give --overlay too")
            from .explain import open_explainer

            engine = open_explainer(model_path, allow_unverified, say)[1]
        else:
            engine = open_backend(model_path, backend, precision, allow_unverified=allow_unverified, say=say)
        check_backend_matches(engine, info)
    opts.check(info)
    if (o.overlay is not None or o.segments is not None) and (info.kind != "recognizer" or opts.task == "features"):
        raise PRPError("--overlay and --segments use labels: they need a recognizer and --task recognize or both")
    say(run_header(model_path, info, engine))
    if many:
        for p in (o.out, o.features, o.overlay):
            if p is not None:
                Path(p).mkdir(parents=True, exist_ok=True)
    todo = [Source(n, plan.stems[n], target=target_of[n]) for n in todo_names]
    if skip:
        say(f"--skip-done: {len(names) - len(todo)} of {len(names)} sources finished before, {len(todo)} to run")
    fmt = o.format if o.format != "auto" else ("text" if sys.stdout.isatty() else "jsonl")
    progress = Progress(len(todo), many, enabled=o.progress and sys.stderr.isatty())
    echo = progress.echo(fmt, many) if o.out is None else None
    metrics = start_metrics(o.metrics, o.metrics_host, say)
    if metrics is not None:
        metrics.watch(todo)
    log = None
    if plan.log is not None:
        log = open(plan.log, "a" if o.skip_done else "w")
    sinks: dict[int, SourceSink] = {}
    rows = []
    FrameReader.open_most = FrameReader.open_now
    t0 = time.perf_counter()

    def sink_for(src: Source) -> SourceSink:
        return SourceSink(src.name, src.stem, plan.files[src.name], info.feature_dim,
                          o.segments.segmenter(info.classes) if o.segments else None, echo)

    def on_frame(src, frame):
        sinks[id(src)].frame(frame.index, frame.original)
        frame.original = None

    events = schedule(todo, info, metrics.timed(engine) if metrics else engine, opts, o.max_open if many else 1, on_frame=on_frame if o.overlay else None,
                      keep_original=o.overlay is not None, say=progress.say(say), stop=stop)
    try:
        for ev in events:
            src = ev.source
            if ev.kind == "open":
                sinks[id(src)] = sink_for(src)
                sinks[id(src)].start(src.reader.fps, src.reader.total_frames, crop_box_of(info.preprocess.short_side, info.preprocess.crop))
                progress.opened(src)
            elif ev.kind == "windows":
                sinks[id(src)].windows(ev.records, ev.features, softmax(ev.logits) if ev.logits is not None else None, ev.maps)
                progress.windows(src)
            else:
                sink = sinks.pop(id(src), None)
                if sink is not None:
                    sink.close()
                row = source_row(src, info.classes)
                row["segments"] = sink.segment_count if sink is not None and o.segments else None
                rows.append(row)
                if log is not None:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                progress.closed(src)
    finally:
        events.close()  # readers stopped and joined now, not at interpreter exit (where a thread inside OpenCV aborts it)
        for sink in sinks.values():  # interrupted: what was written stays valid
            sink.close()
        if log is not None:
            log.close()
        if metrics is not None:
            metrics.close()
        progress.close()
    wall = time.perf_counter() - t0
    order = {n: i for i, n in enumerate(names)}
    rows += [skip[n] for n in names if n in skip]
    rows.sort(key=lambda r: order[r["source"]])
    summary = {"schema_version": 1, "backend": engine.name, "model": str(model_path), "verified": getattr(engine, "verified", None) is not False, "sources": rows,
               "totals": {**totals(rows, wall, len(names) - len(todo), FrameReader.open_most), "engine_starts": backends.engine_starts - starts_before + (backend == "torch")},
               "options": {**vars(opts)}, **({"stopped_by": stop.reason} if stop is not None and stop.is_set() else {})}
    if plan.summary is not None:
        atomic_write(plan.summary, json.dumps(summary, indent=2, default=str))
    if not many and rows and rows[0]["status"] == "failed":  # a span the one file lacks is a usage error (exit 2)
        why = rows[0]["reason"] + (f" ({rows[0]['windows']} windows written before it)" if rows[0]["windows"] else "")
        raise UsageError(why) if todo and todo[0].usage_error else StreamError(why, summary)
    return summary


__all__ = ["RunOptions", "RunOutputs", "SegmentOptions", "StreamError", "find_model", "run", "stream_many", "stream_records"]
