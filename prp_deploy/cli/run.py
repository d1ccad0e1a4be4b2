"""Running a model on video: `run` (files, folders, cameras, streams) and `explain` (where the model looks)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..clitypes import CommaList, ReconnectCount, TimePoint
from ..errors import PRPError, UsageError
from ..runtime.artifacts import ENGINES, PRECISIONS

from .common import check_new_file, say


@click.command("run")
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Export folder, .onnx or .plan (default: the newest export under runs/).")
@click.option("--backend", type=click.Choice(["auto", *ENGINES, "torch"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Which artefact of the export (default: auto's choice: FP16 TensorRT on a GPU, else FP32, or INT8 where its export measured it faster on this machine).")
@click.option("--task", type=click.Choice(["recognize", "features", "both"]), default="both", show_default=True)
@click.option("--stride", type=click.IntRange(1), default=None, help="Source frames between window starts (default: half a window).")
@click.option("--sample-rate", default=None, help="Take every K-th frame, or 'auto' (the model's rate scaled by source fps / training fps). Default: the model's.")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True, help="Windows per engine call, taken across sources.")
@click.option("--topk", type=click.IntRange(1), default=5, show_default=True)
@click.option("--out", type=click.Path(), default=None, help="JSONL file; with several sources (or OUT/ given with its slash) a folder (a file per source + summary.json). Default: stdout.")
@click.option("--features", "features_out", type=click.Path(), default=None, help="Per-window embeddings .npy (+ a .jsonl line per row); a folder with several sources.")
@click.option("--overlay", type=click.Path(), default=None, help="Write the video with the top label (and segment timeline) drawn on it (.mp4; a folder with several sources).")
@click.option("--overlay-explain", is_flag=True,
              help="Also blend each window's top-class activation map into the overlay (runs the export's model_explain.onnx).")
@click.option("--segments", is_flag=True, help="Merge windows into action segments (STEM.segments.jsonl; stdout shows segments).")
@click.option("--smooth", type=click.IntRange(1), default=3, show_default=True, help="Segments: windows in the centred moving average of scores.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True, help="Segments: a class's smoothed score that opens a segment.")
@click.option("--hysteresis", type=click.FloatRange(0, 1), default=0.3, show_default=True, help="Segments: the lower score below which a segment closes.")
@click.option("--min-windows", type=click.IntRange(1), default=2, show_default=True, help="Segments: shorter ones are dropped.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "jsonl"]), default="auto", show_default=True,
              help="stdout without --out: auto = a short line per window on a terminal, JSONL in a pipe.")
@click.option("--max-open", type=click.IntRange(1), default=None, help="Sources decoded at once (default: twice the cores).")
@click.option("--skip-done", is_flag=True, help="Skip sources that a previous run into the same --out DIR finished.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--live/--no-live", default=None, help="Drop frames to keep up with real time (default: on for webcams and RTSP).")
@click.option("--reconnect", type=ReconnectCount(), default="forever", show_default=True,
              help="A camera or stream that stops without ending (an outage) is reopened this many times in a row, or forever; "
                   "files never are. A recording that reaches its end ends.")
@click.option("--reconnect-wait", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds before the first reopen; doubles each try (jittered down to half).")
@click.option("--reconnect-max-wait", type=click.FloatRange(0), default=30.0, show_default=True, help="The longest wait between reopens.")
@click.option("--stall-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="A stream connected but with no frame for this many seconds has an outage (and no read blocks longer).")
@click.option("--allow-unverified", is_flag=True,
              help="Run a model file that parity did not pass (FAILED, never judged, changed since, or no parity.json); "
                   "warns, and the summary says verified: false.")
@click.option("--start", type=TimePoint(), default=None, help="Files: begin at this time (seconds or HH:MM:SS), by a seek.")
@click.option("--end", type=TimePoint(), default=None, help="Files: stop before this time (seconds or HH:MM:SS).")
@click.option("--metrics", "metrics_port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics while the run lasts (0: any free port; needs the metrics extra).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="The address --metrics listens on (0.0.0.0: every interface).")
def run_cmd(sources, model, backend, precision, task, stride, sample_rate, batch, topk, out, features_out, overlay, overlay_explain, segments, smooth,
            threshold, hysteresis, min_windows, fmt, max_open, skip_done, quiet, live, reconnect, reconnect_wait, reconnect_max_wait,
            stall_timeout, allow_unverified, start, end, metrics_port, metrics_host):
    """Stream SOURCES through the model: video files, folders (searched recursively), globs, webcam
    indexes such as 0, URLs, or @LIST.txt (one source a line). Several sources share one engine.
    Exit 0 when every source succeeded, 1 when any failed, 2 for a usage error."""
    from ..runtime.run import DEFAULT_MAX_OPEN, RunOptions, RunOutputs, RunSettings, SegmentOptions, StreamError, run
    from ..runtime.stopping import StopRequest, stop_on_signals
    from ..runtime.summary import format_summary

    if sample_rate not in (None, "auto"):
        if not sample_rate.isdigit() or int(sample_rate) < 1:
            raise UsageError(f"--sample-rate wants a positive integer or auto, got {sample_rate!r}")
        sample_rate = int(sample_rate)
    if task == "features" and features_out is None and out is None:
        raise UsageError("--task features needs --features FILE.npy (or --out for the window records)")
    if hysteresis > threshold:
        raise UsageError(f"--hysteresis ({hysteresis}) must not be above --threshold ({threshold})")
    if reconnect_max_wait < reconnect_wait:
        raise UsageError(f"--reconnect-max-wait ({reconnect_max_wait}) must not be below --reconnect-wait ({reconnect_wait})")
    opts = RunOptions(task=task, stride=stride, sample_rate=sample_rate, batch=batch, topk=topk, live=live, reconnect=reconnect,
                      reconnect_wait=reconnect_wait, reconnect_max_wait=reconnect_max_wait, stall_timeout=stall_timeout, start=start, end=end)
    outputs = RunOutputs(out=out, features=features_out, overlay=overlay, overlay_explain=overlay_explain, format=fmt, skip_done=skip_done, progress=not quiet,
                         max_open=max_open or DEFAULT_MAX_OPEN, metrics=metrics_port, metrics_host=metrics_host,
                         segments=SegmentOptions(smooth, threshold, hysteresis, min_windows) if segments else None)
    reference = None
    if backend == "torch":  # the debugging reference needs torch and the model code: imported only when asked
        from ..export.reference import torch_reference as reference
    with stop_on_signals(StopRequest()) as stop:  # SIGTERM, SIGHUP, Ctrl-C: a graceful stop, every output whole
        try:
            settings = RunSettings(backend=backend, precision=precision, allow_unverified=allow_unverified, windows=opts, outputs=outputs)
            summary = run(list(sources), model=model, options=settings, say=say, reference=reference, stop=stop)
        except StreamError as e:  # the one source failed after it gave frames: its summary (counts, outages) still comes, then why
            row = e.summary["sources"][0] if e.summary and e.summary["sources"] else {}
            if row.get("frames") or row.get("reconnect_attempts"):
                say(format_summary(e.summary))
            raise
    say(format_summary(summary))
    if not summary["verified"]:
        say("note: these results come from a model parity did not pass (--allow-unverified)")
    failed = summary["totals"]["failed"]
    if stop.exit_code is not None:  # 128 + the signal: 143 for SIGTERM, 130 for Ctrl-C, 129 for SIGHUP
        say(f"stopped by {stop.reason}: every output is closed whole" + (f"; {failed} sources had failed before" if failed else ""))
        sys.exit(stop.exit_code)
    if failed:
        raise PRPError(f"{failed} of {summary['totals']['sources']} sources failed (their reasons are above"
                       + (f"; {Path(out) / 'summary.json'})" if out is not None and (Path(out) / "summary.json").exists() else ")"))


@click.command("explain")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Export folder or run folder (its export; default: the newest export).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The maps as a video (.mp4): every frame of the chosen windows.")
@click.option("--png", type=click.Path(path_type=Path), default=None, help="A grid of frames (.png): two per chosen window.")
@click.option("--windows", type=CommaList(int), default=None, help="Window numbers (windows tile the video; default: 4 spread over it).")
@click.option("--allow-unverified", is_flag=True, help="Use a model_explain.onnx that parity did not pass.")
@click.option("--start", type=TimePoint(), default=None, help="Only windows from this time on (seconds or HH:MM:SS), by a seek.")
@click.option("--end", type=TimePoint(), default=None, help="Only windows that end before this time.")
def explain_cmd(video, model, out, png, windows, allow_unverified, start, end):
    """Where the model looks in VIDEO: per window, conv5's activation map, the predicted class's
    activation map (a recognizer) and the clip's motion-attention map, as heat maps. Torch-free."""
    from ..runtime.explain import explain_video, open_explainer, write_grid, write_video
    from ..runtime.file_decoder import Span
    from ..runtime.run import find_model

    if out is None and png is None:
        raise UsageError("say where the maps go: --out maps.mp4 and/or --png grid.png")
    Span(start, end)  # --start before --end: a usage error before the model opens
    check_new_file(out, "--out", (".mp4",), [video])
    check_new_file(png, "--png", (".png", ".jpg"), [video, out])
    model = find_model(model, say)
    if model.is_dir() and not (model / "model.json").exists() and (model / "export").is_dir():
        model = model / "export"  # a run folder: its export
    info, backend = open_explainer(model, allow_unverified, say)
    maps = explain_video(video, info, backend, list(windows) if windows else None, start, end)
    for w in maps:
        what = f"{w.label} {w.score:.2f}" if w.label else "features"
        say(f"window {w.window} (frames {w.start_frame}-{w.start_frame + len(w.frames) - 1}): {what}")
    if png is not None:
        write_grid(maps, png)
        say(f"wrote {png}")
    if out is not None:
        write_video(maps, out, info.train_fps)
        say(f"wrote {out}")
