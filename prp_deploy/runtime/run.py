"""`prp-deploy run`: a source through the model, records out. Used by the CLI and by
`Recognizer.stream`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import PRPError
from ..rundir import newest_export
from .backends import check_backend_matches, open_backend
from .model_info import ModelInfo, read_model_info
from .outputs import FeatureWriter, JsonlWriter, OverlayWriter
from .sources import FrameReader, parse_source
from .stream import StreamStats, run_windows, top_k

TASKS = ("recognize", "features", "both")


class StreamError(PRPError):
    """The source died mid-way; what was produced before is kept."""


@dataclass
class RunOptions:
    task: str = "both"
    stride: int | None = None  # source frames between window starts; default half a window's span
    sample_rate: int | str | None = None  # None: the model's; "auto": scaled by source fps / training fps
    batch: int = 8
    topk: int = 5
    live: bool | None = None  # None: webcams and RTSP are live, files are not
    reconnect: int = 3  # a network stream that breaks is reopened this many times in a row before giving up
    reconnect_wait: float = 0.5  # seconds before the first reopen, doubling each further try


def find_model(model: str | Path | None, say: Callable[[str], None]) -> Path:
    """--model, else the newest export under runs/ (and say which)."""
    if model is not None:
        return Path(model)
    found = newest_export()
    say(f"using the newest export: {found}")
    return found


def resolve_sample_rate(opt, info: ModelInfo, fps: float, say) -> int:
    if opt is None:
        return info.sample_rate
    if opt == "auto":
        if fps > 0 and info.train_fps > 0:
            rate = max(1, round(info.sample_rate * fps / info.train_fps))
            say(f"sample rate {rate}: source {fps:.2f} fps, model trained at {info.train_fps:.2f} fps")
            return rate
        say("sample rate auto: the source or the model gives no fps; using the model's")
        return info.sample_rate
    rate = int(opt)
    if rate < 1:
        raise PRPError(f"--sample-rate must be >= 1 or auto, got {opt}")
    return rate


def stream_records(source: str, info: ModelInfo, backend, opts: RunOptions, stats: StreamStats | None = None,
                   overlay: OverlayWriter | None = None, say: Callable[[str], None] = lambda s: None,
                   on_batch: Callable[[list[dict], np.ndarray | None], None] | None = None) -> Iterator[dict]:
    """Yield one record per window (the JSONL records), keeping `stats` up to date."""
    if opts.task not in TASKS:
        raise PRPError(f"task must be one of {', '.join(TASKS)}, got {opts.task!r}")
    if opts.task != "features" and info.kind != "recognizer":
        raise PRPError("this model gives features only (exported with --from pretrain); use --task features")
    if opts.topk < 1:
        raise PRPError(f"--topk must be >= 1, got {opts.topk}")
    stats = stats or StreamStats()
    spec = parse_source(source, opts.live)
    reader = FrameReader(spec, info.preprocess, keep_original=overlay is not None, reconnects=opts.reconnect, backoff_s=opts.reconnect_wait)
    step = resolve_sample_rate(opts.sample_rate, info, reader.fps, say)
    span = (info.preprocess.frames - 1) * step + 1
    stride = opts.stride or max(1, (info.preprocess.frames // 2) * step)
    if overlay is not None:
        overlay.fps = reader.fps or 25.0
    reader.start()
    t0 = time.perf_counter()
    try:
        frames = _Tapped(reader, overlay) if overlay is not None else reader
        for group, out, infer_s in run_windows(frames, backend, info, step, stride, opts.batch):
            now = time.perf_counter()
            stats.inference_s += infer_s
            records = []
            for i, w in enumerate(group):
                r = {"source": spec.name, "window": w.number, "start_frame": w.start_frame, "end_frame": w.end_frame,
                     "start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4)}
                if opts.task != "features":
                    r["top"] = top_k(out["logits"][i], info.classes, opts.topk)
                if w.padded:
                    r["padded"] = w.padded
                    stats.padded_windows += 1
                stats.latencies.append(now - w.frames[-1].read_at)
                records.append(r)
            if "logits" in out:
                s = out["logits"].sum(0)
                stats.logits_sum = s if stats.logits_sum is None else stats.logits_sum + s
            stats.windows += len(group)
            if overlay is not None and "top" in records[-1]:
                best = records[-1]["top"][0]
                overlay.update(best["label"], best["score"], group[-1].end_frame)
            if on_batch:
                on_batch(records, out.get("features") if opts.task != "recognize" else None)
            yield from records
    finally:
        reader.stop()
        stats.frames = reader.frames
        stats.dropped_frames = reader.dropped
        stats.reconnects = reader.reopened
        stats.wall_s = time.perf_counter() - t0
        if stats.windows and stats.padded_windows and reader.frames < span:
            say(f"{spec.name}: {reader.frames} frames, shorter than one window of {span}: padded by repeating the last frame")
    if reader.error:
        raise StreamError(reader.error)


class _Tapped:
    """A reader whose frames also go to the overlay writer (the originals are kept only for it)."""

    def __init__(self, reader: FrameReader, overlay: OverlayWriter):
        self._reader, self._overlay = reader, overlay

    def __iter__(self):
        for f in self._reader:
            self._overlay.add(f.index, f.original)
            f.original = None
            yield f

    def __getattr__(self, name):
        return getattr(self._reader, name)


def run(source: str, model: str | Path | None = None, backend: str = "auto", opts: RunOptions = RunOptions(),
        out: Path | None = None, features: Path | None = None, overlay: Path | None = None,
        say: Callable[[str], None] = lambda s: None, reference: Callable[[Path], tuple] | None = None,
        precision: str | None = None) -> dict:
    """Run `source` through the model, writing JSONL (stdout or `out`), features and overlay; returns the summary.

    `backend="torch"` needs `reference`, a function model path → (ModelInfo, backend) that
    the caller brings (the CLI passes export's torch reference): the runtime itself never
    imports torch or the model code.
    """
    model_path = find_model(model, say)
    if backend == "torch":
        if reference is None:
            raise PRPError("the torch backend needs the model code: use `prp-deploy run --backend torch`")
        info, engine = reference(model_path)
    else:
        info = read_model_info(model_path)
        engine = open_backend(model_path, backend, precision)
        check_backend_matches(engine, info)
    say(f"model {model_path} ({info.kind}, {len(info.classes)} classes) on {engine.name}")
    if features is not None and opts.task == "recognize":
        raise PRPError("--features needs --task features or both")
    stats = StreamStats()
    jsonl = JsonlWriter(out) if opts.task != "features" or out else None
    feats = FeatureWriter(features, info.feature_dim) if features is not None else None
    ov = None
    if overlay is not None:
        if info.kind != "recognizer" or opts.task == "features":
            raise PRPError("--overlay draws labels: it needs a recognizer and --task recognize or both")
        ov = OverlayWriter(overlay, 0.0)

    def on_batch(records, feature_rows):
        if jsonl:
            jsonl.write(records)
        if feats is not None and feature_rows is not None:
            feats.write(feature_rows, [{k: r[k] for k in ("window", "start_frame", "end_frame", "start_s", "end_s")} for r in records])

    error = None
    try:
        for _ in stream_records(source, info, engine, opts, stats, ov, say, on_batch):
            pass
    except StreamError as e:
        error = e
    finally:
        if jsonl:
            jsonl.close()
        if feats:
            feats.close()
        if ov:
            ov.close()
    summary = stats.summary(info.classes)
    summary["backend"] = engine.name
    if error is not None:
        summary["error"] = str(error)
        raise StreamError(f"{error} ({stats.windows} windows written before it)") from None
    return summary


def format_summary(s: dict) -> str:
    video = s.get("video_prediction")
    lines = []
    if video:
        lines.append("video: " + ", ".join(f"{p['label']} {p['score']:.3f}" for p in video))
    lines.append(f"frames {s['frames']}, windows {s['windows']}, dropped frames {s['dropped_frames']}, padded windows {s['padded_windows']}"
                 + (f", reconnects {s['reconnects']}" if s.get("reconnects") else ""))
    lines.append(f"throughput {s['frames_per_s']:.1f} frames/s, {s['windows_per_s']:.2f} windows/s; "
                 f"latency p50 {s['latency_p50_ms']:.1f} ms, p95 {s['latency_p95_ms']:.1f} ms; backend {s.get('backend')}")
    return "\n".join(lines)


__all__ = ["RunOptions", "StreamError", "find_model", "format_summary", "run", "stream_records"]
