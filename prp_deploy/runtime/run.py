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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..errors import PRPError, UsageError
from ..files import atomic_write
from ..paths import newest_export
from .backends import check_backend_matches, counting_engine_starts, open_backend
from .model_info import ModelInfo, read_model_info
from .output_paths import OutputPlan, done_before, model_files, plan_outputs, wants_many
from .outputs import RunWriters
from .progress import Progress
from .options import RunOptions
from .scheduler import Source, schedule
from .segments import Segmenter
from .source_list import expand_sources, mask_credentials, output_stems
from .decoders import OpenCount
from .stream import StreamStats, softmax
from .stopping import StopRequest
from .metrics import RunMetrics, start_metrics
from .summary import run_header, totals

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


@dataclass
class _Plan:
    """What a run will do, decided before the model opens or a file is written."""
    model_path: Path
    names: list[str]  # every source as shown (a URL's password masked), in the order given
    target_of: dict[str, str]  # name → what is opened
    todo: list[str]  # the names to run (--skip-done leaves out the finished)
    skip: dict[str, dict]  # name → its row from before
    many: bool
    files: OutputPlan


@dataclass
class RunSettings:
    """Everything `run` is told beside its sources and model: which engine, the windows, the outputs."""
    backend: str = "auto"  # auto | onnxruntime | tensorrt | torch (torch: `run(..., reference=...)` brings the model code)
    precision: str | None = None  # which artefact of the export (None: auto's choice)
    allow_unverified: bool = False  # serve a model file parity did not pass (with a warning; the summary says verified: false)
    windows: RunOptions = field(default_factory=RunOptions)  # task, stride, batch, live sources' reconnects, a file's span
    outputs: RunOutputs = field(default_factory=RunOutputs)  # records, features, overlays, segments, metrics


def run(sources: str | Path | list[str], *, model: str | Path | None = None, options: RunSettings | None = None,
        say: Callable[[str], None] = lambda s: None, reference: Callable[[Path], tuple] | None = None,
        stop: StopRequest | None = None) -> dict:
    """Run the sources through the model (default: the newest export under runs/), writing what
    `options.outputs` asks for; returns {"backend", "sources": [a row per source], "totals"}. One
    source that fails raises StreamError (after writing what it could); with several, failures
    are rows with status "failed". Every count in the summary is this run's own, also beside
    other runs in other threads.

    `say` gets the run's one-line news; `stop` (a StopRequest) ends it gracefully, every output
    whole. The torch backend needs `reference`, a function model path → (ModelInfo, backend)
    that the caller brings (the CLI passes export's torch reference): the runtime itself never
    imports torch or the model code. Only a model file that parity passed is served
    (`artifacts.verdict`) unless `options.allow_unverified`.
    """
    options = options or RunSettings()
    o, opts, backend = options.outputs, options.windows, options.backend
    plan = _plan_run(sources, model, opts, o, say)
    with counting_engine_starts() as engine_starts:
        info, engine = _open_engine(plan.model_path, options, reference, say)
    say(run_header(plan.model_path, info, engine))
    if plan.many:
        for folder in (o.out, o.features, o.overlay):
            if folder is not None:
                Path(folder).mkdir(parents=True, exist_ok=True)
    if plan.skip:
        say(f"--skip-done: {len(plan.names) - len(plan.todo)} of {len(plan.names)} sources finished before, {len(plan.todo)} to run")
    todo = [Source(n, plan.files.stems[n], target=plan.target_of[n]) for n in plan.todo]
    open_count = OpenCount()
    rows, wall = _stream(plan, todo, info, engine, opts, o, say, stop, open_count)
    rows += [plan.skip[n] for n in plan.names if n in plan.skip]
    order = {n: i for i, n in enumerate(plan.names)}
    rows.sort(key=lambda r: order[r["source"]])
    summary = {"schema_version": 1, "backend": engine.name, "model": str(plan.model_path), "verified": getattr(engine, "verified", None) is not False,
               "sources": rows,
               "totals": {**totals(rows, wall, len(plan.skip), open_count.most), "engine_starts": engine_starts[0] + (backend == "torch")},
               "options": {**vars(opts)}, **({"stopped_by": stop.reason} if stop is not None and stop.is_set() else {})}
    if plan.files.summary is not None:
        atomic_write(plan.files.summary, json.dumps(summary, indent=2, default=str))
    if not plan.many and rows and rows[0]["status"] == "failed":  # a span the one file lacks is a usage error (exit 2)
        why = rows[0]["reason"] + (f" ({rows[0]['windows']} windows written before it)" if rows[0]["windows"] else "")
        raise UsageError(why) if todo and todo[0].usage_error else StreamError(why, summary)
    return summary


def _plan_run(sources, model, opts: RunOptions, o: RunOutputs, say) -> _Plan:
    """The sources, the model file and every output path, checked for clashes, before anything opens."""
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
    if not Path(model_path).exists():
        raise PRPError(f"{model_path}: no such model")
    skip = done_before(Path(o.out)) if o.skip_done else {}
    todo = [n for n in names if n not in skip]
    stem_of = dict(zip(names, output_stems(names)))  # over every source, so a skipped one keeps its name's place
    files = plan_outputs(todo, [stem_of[n] for n in todo], many, o.out, o.features, o.overlay, o.segments is not None,
                         protected=model_files(Path(model_path)))
    return _Plan(model_path, names, target_of, todo, skip, many, files)


def _open_engine(model_path: Path, options: RunSettings, reference, say):
    """(ModelInfo, engine): the checked model file on the backend asked for, its options checked against it."""
    backend, precision, allow_unverified = options.backend, options.precision, options.allow_unverified
    opts, o = options.windows, options.outputs
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
    return info, engine


def _stream(plan: _Plan, todo: list[Source], info: ModelInfo, engine, opts: RunOptions, o: RunOutputs, say, stop,
            open_count: OpenCount) -> tuple[list[dict], float]:
    """The sources through the engine, each one's files written as its windows come: (a row per source, seconds)."""
    fmt = o.format if o.format != "auto" else ("text" if sys.stdout.isatty() else "jsonl")
    progress = Progress(len(todo), plan.many, enabled=o.progress and sys.stderr.isatty())
    writers = RunWriters(plan.files, info, o, progress.echo(fmt, plan.many) if o.out is None else None, progress)
    metrics = start_metrics(o.metrics, o.metrics_host, say)
    if metrics is not None:
        metrics.watch(todo)
    t0 = time.perf_counter()
    events = schedule(todo, info, metrics.timed(engine) if metrics else engine, opts, o.max_open if plan.many else 1,
                      on_frame=writers.frame if o.overlay else None, keep_original=o.overlay is not None, say=progress.say(say), stop=stop,
                      open_count=open_count)
    try:
        for ev in events:
            writers.handle(ev)
    finally:
        events.close()  # readers stopped and joined now, not at interpreter exit (where a thread inside OpenCV aborts it)
        writers.close()
        if metrics is not None:
            metrics.close()
        progress.close()
    return writers.rows, time.perf_counter() - t0


__all__ = ["RunOptions", "RunOutputs", "RunSettings", "SegmentOptions", "StreamError", "find_model", "run", "stream_many", "stream_records"]
