"""The `prp-deploy` command: it only parses and calls plain functions that tests call directly.
A PRPError becomes one line on stderr and exit 1."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .clitypes import CommaList, OneLineErrors, ReconnectCount, TimePoint
from .data.commands import data
from .errors import PRPError, UsageError
from .models.registry import BACKBONES, DEPTHS
from .runtime.artifacts import ARTIFACTS, ENGINES, PRECISIONS, by_file


def _say(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prp-deploy")
@click.option("--verbose", is_flag=True, help="Let FFmpeg's and OpenCV's own decoder messages through to stderr.")
def main(verbose):
    """PRP video models: self-supervised training, ONNX/TensorRT export, streaming inference."""
    if verbose:  # before any command imports cv2, which reads these once
        os.environ.update(OPENCV_FFMPEG_LOGLEVEL="32", OPENCV_LOG_LEVEL="INFO", PRP_DEPLOY_FFMPEG_LOG="1")


main.add_command(data)


@main.command("train", context_settings={"show_default": True})
@click.option("--stage", type=click.Choice(["all", "pretrain", "finetune", "eval"]), default="all", show_default=True)
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=None, help="Dataset root (default: the built-in synthetic dataset).")
@click.option("--dataset", type=click.Choice(["ucf101", "hmdb51", "folder"]), default=None,
              help="Layout of --data: ucf101 (UCF-101/ + ucfTrainTestlist/), hmdb51 (hmdb51_org/ + split files) or folder "
                   "(<class>/<video>). Default: ucf101.")
@click.option("--split", type=click.IntRange(1, 3), default=None, help="Train/test split 1-3 of the dataset. Default: 1.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default=None)
@click.option("--depth", type=click.Choice([str(d) for d in DEPTHS]), default=None)
@click.option("--width", type=float, default=None, help="Channel multiplier (1.0 = the paper's network).")
@click.option("--frames", type=int, default=None, help="Clip length T (a multiple of the backbone's temporal stride: 8 here).")
@click.option("--crop", type=int, default=None, help="Crop size (a multiple of the backbone's spatial stride: 16 here).")
@click.option("--short-side", type=int, default=None, help="Frames are resized to this short side before cropping.")
@click.option("--objective", type=click.Choice(["dgp", "dp", "gp", "none"]), default=None, help="none = random init (the paper's baseline).")
@click.option("--intervals", type=CommaList(int), default=None, help="Playback rates S, e.g. 1,2,4,8.")
@click.option("--rec-rate", type=click.Choice(["1", "2", "4"]), default=None, help="Reconstruction (slow-down) rate r.")
@click.option("--motion-attention/--no-motion-attention", default=None)
@click.option("--pretrain-epochs", type=click.IntRange(0), default=None)
@click.option("--finetune-epochs", type=click.IntRange(0), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="For both stages.")
@click.option("--workers", type=click.IntRange(0), default=None, help="DataLoader worker processes.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default runs/<date>-<backbone>-<objective>).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML config; flags override it.")
@click.option("--preset", type=click.Choice(["tiny", "paper"]), default=None, help="Default: tiny without --data, paper with it.")
@click.option("--val-videos", type=click.IntRange(0), default=None, help="Held out of the training list (capped at 15 %).")
@click.option("--labels-per-class", type=click.IntRange(1), default=None,
              help="Finetune on this many labelled training videos per class; the rest stay unlabelled (tiny preset: 16).")
@click.option("--label-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Finetune on this fraction of each class's training videos (1 = every label).")
@click.option("--subtract-mean/--no-subtract-mean", default=None,
              help="The encoder centres each pixel over the clip's time first (tiny preset: on; the paper: off).")
@click.option("--select", type=click.Choice(["val_loss", "rate_accuracy", "last", "average"]), default=None,
              help="Which pretraining encoder becomes pretrain/best.pt (finetuning's start): the epoch of lowest val loss "
                   "(the paper's code), of highest val playback-rate accuracy, the last, or the mean of the last 3 epochs' "
                   "weights. Default: the preset's (pretrain.select).")
@click.option("--init", "--init-from", "init", type=click.Path(path_type=Path), default=None,
              help="Checkpoint whose encoder a finetune starts from (instead of this run's pretrain/best.pt).")
@click.option("--keep-epochs", is_flag=True,
              help="Also keep every pretraining epoch's weights as pretrain/epoch-N.pt (epoch-0.pt: the init), to finetune, "
                   "export or evaluate any of them (--init-from, prp-deploy eval).")
@click.option("--resume", is_flag=True, help="Continue the stage in progress from its last.pt (with --out, else the newest run).")
def train_cmd(stage, data_root, dataset, split, backbone, depth, width, frames, crop, short_side, objective, intervals, rec_rate,
              motion_attention, pretrain_epochs, finetune_epochs, batch_size, workers, device, seed, out, config_file, preset,
              val_videos, labels_per_class, label_fraction, subtract_mean, select, init, keep_epochs, resume):
    """Pretrain with PRP, finetune for action recognition, evaluate (recognition, retrieval, pretext).

    An option left out takes the preset's value: --preset tiny without --data (R(2+1)D-10 x0.25,
    8x32x32 clips, Adam, 7 + 5 epochs), the paper's settings with it (R(2+1)D-10, 16x112x112,
    SGD, 300 + 150 epochs); config.yaml in the run folder records every value used."""
    from dataclasses import replace

    from .rundir import newest_run
    from .training.config_files import build_config, load_run_config
    from .training.loop import Interrupted
    from .training.pipeline import train
    from .training.resume import refuse_changes

    def given(**kw):
        return {k: v for k, v in kw.items() if v is not None}

    if labels_per_class is not None and label_fraction is not None:
        raise PRPError("give --labels-per-class or --label-fraction, not both")
    budget = {"labels_per_class": labels_per_class, "label_fraction": label_fraction}  # one label budget replaces the other
    budget = budget if labels_per_class is not None or label_fraction is not None else {}
    overrides = {
        "model": given(backbone=backbone, depth=int(depth) if depth else None, width=width, subtract_mean=subtract_mean),
        "data": {**given(data=str(data_root) if data_root else None, dataset=dataset, split=split, workers=workers, val_videos=val_videos),
                 **({"preprocess": p} if (p := given(frames=frames, crop=crop, short_side=short_side)) else {})},
        "pretrain": given(objective=objective, intervals=intervals, rec_rate=int(rec_rate) if rec_rate else None,
                          motion_attention=motion_attention, epochs=pretrain_epochs, batch_size=batch_size, select=select),
        "finetune": {**given(epochs=finetune_epochs, batch_size=batch_size), **budget},
        **given(seed=seed, device=device),
    }
    overrides = {k: v for k, v in overrides.items() if v != {}}
    if resume:
        out = out or newest_run()
        cfg = load_run_config(out)
        refuse_changes(cfg, out, overrides, config_file, preset, init)
        # Only what does not change the result so far may differ on resume: device, workers, and more epochs.
        cfg = replace(
            cfg,
            device=device or cfg.device,
            data=replace(cfg.data, workers=workers if workers is not None else cfg.data.workers),
            pretrain=replace(cfg.pretrain, epochs=pretrain_epochs if pretrain_epochs is not None else cfg.pretrain.epochs),
            finetune=replace(cfg.finetune, epochs=finetune_epochs if finetune_epochs is not None else cfg.finetune.epochs),
        )
    else:
        if data_root is not None and not Path(data_root).exists():
            raise PRPError(f"{data_root}: no such dataset folder")
        cfg = build_config(preset, config_file, overrides)
    try:
        run_dir = train(cfg, stage=stage, out=out, init=init, resume=resume, say=_say, keep_epochs=keep_epochs)
    except Interrupted as e:
        _say(f"interrupted: {e}; continue with: prp-deploy train --resume --out {out or 'RUN'}")
        sys.exit(130)
    click.echo(str(run_dir))


@main.command("export")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--from", "stage", type=click.Choice(["finetune", "pretrain"]), default="finetune", show_default=True,
              help="finetune: the action recogniser; pretrain: the pretrained encoder's features.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Export folder (default RUN/export).")
@click.option("--fp16", is_flag=True, help=f"Also write {ARTIFACTS['onnxruntime-fp16'].file} (FP16 weights and math, FP32 I/O).")
@click.option("--trt", is_flag=True, help=f"Also build an FP16 TensorRT engine {ARTIFACTS['tensorrt'].file} (implies --fp16).")
@click.option("--batch", default="1:8:32", show_default=True, help="TensorRT optimisation profile MIN:OPT:MAX; Triton's max batch.")
@click.option("--triton", is_flag=True, help="Also write a Triton model repository under OUT/triton.")
@click.option("--parity-clips", type=click.IntRange(1), default=64, show_default=True,
              help="Real clips (from the run's test videos, over the classes in turn) every artefact is compared on.")
@click.option("--parity-videos", multiple=True, type=click.Path(path_type=Path), help="Videos (or folders) for the parity clips.")
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="FP32 parity: an element fails only if it differs by more than atol and rtol*|reference| both.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="FP32 parity: the relative tolerance (see --atol).")
@click.option("--verify-only", is_flag=True, help="Re-check the artefacts already in OUT; build nothing.")
@click.option("--int8", is_flag=True, help=f"Also write {ARTIFACTS['onnxruntime-int8'].file}, calibrated on the run's training videos (with --trt: an INT8 engine).")
@click.option("--calib-clips", type=click.IntRange(1), default=64, show_default=True, help="INT8 calibration clips.")
@click.option("--calib-method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax", show_default=True)
@click.option("--int8-exclude", type=CommaList(str), default=None, help="Node names kept in FP32 (comma list).")
@click.option("--int8-engine", type=click.Choice(["nncf", "modelopt", "ort"]), default=None,
              help="Quantisation engine (default: nncf with accuracy control for ONNX Runtime, modelopt for TensorRT).")
@click.option("--trt-int8-anyway", is_flag=True,
              help="With --trt --int8: build model_int8.plan even when its source graph fails the held-back judge (by default it is "
                   "declined and TensorRT serves FP16); parity still judges it.")
def export_cmd(source, stage, out, fp16, trt, batch, triton, parity_clips, parity_videos, atol, rtol, verify_only, int8, calib_clips,
               calib_method, int8_exclude, int8_engine, trt_int8_anyway):
    """Export a run (default: the newest under runs/) to ONNX / FP16 / INT8 / TensorRT and check parity."""
    from .export.int8 import Int8Options
    from .export.pipeline import ExportOptions, export, parse_batch

    opts = ExportOptions(stage=stage, out=out, fp16=fp16, trt=trt, triton=triton, batch=parse_batch(batch), parity_clips=parity_clips,
                         parity_videos=list(parity_videos), atol=atol, rtol=rtol, verify_only=verify_only, int8=int8,
                         int8_options=Int8Options(calib_clips, calib_method, tuple(int8_exclude or ()), engine=int8_engine,
                                                      trt_int8_anyway=trt_int8_anyway))
    result = export(source, opts, say=_say)
    click.echo(result.report.table())
    for line in [*result.speed, *(f"{file} not built: {why}" for file, why in result.declined.items())]:
        click.echo(line)
    click.echo(f"artefacts in {result.out}: {', '.join(result.artifacts)}; report {result.out / 'parity.json'}")
    if not result.report.passed:
        failed = result.report.failed() or result.artifacts  # none judged at all: every one of them
        hint = ""
        if any(by_file(a) is not None and by_file(a).precision == "int8" for a in failed):
            from .export.int8 import REMEDY_HINT

            hint = f"; for INT8, {REMEDY_HINT}"
        raise PRPError(f"parity FAILED for {', '.join(failed)}; artefacts kept, see {result.out / 'parity.json'}{hint}")
    if result.not_built:  # an asked-for engine is missing: never a silent exit 0
        first, why = next(iter(result.not_built.items()))
        more = f" (and {', '.join(list(result.not_built)[1:])})" if len(result.not_built) > 1 else ""
        message = f"{first}{more} not built: {why} (the ONNX artefacts above are written and checked)"
        if result.missing_tensorrt:
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        raise PRPError(message)


@main.command("run")
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
    from .runtime.run import DEFAULT_MAX_OPEN, RunOptions, RunOutputs, SegmentOptions, StreamError, run
    from .runtime.stopping import StopRequest, stop_on_signals
    from .runtime.summary import format_summary

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
        from .export.reference import torch_reference as reference
    with stop_on_signals(StopRequest()) as stop:  # SIGTERM, SIGHUP, Ctrl-C: a graceful stop, every output whole
        try:
            summary = run(list(sources), model, backend, opts, say=_say, reference=reference, precision=precision, outputs=outputs,
                          allow_unverified=allow_unverified, stop=stop)
        except StreamError as e:  # the one source failed after it gave frames: its summary (counts, outages) still comes, then why
            row = e.summary["sources"][0] if e.summary and e.summary["sources"] else {}
            if row.get("frames") or row.get("reconnect_attempts"):
                _say(format_summary(e.summary))
            raise
    _say(format_summary(summary))
    if not summary["verified"]:
        _say("note: these results come from a model parity did not pass (--allow-unverified)")
    failed = summary["totals"]["failed"]
    if stop.exit_code is not None:  # 128 + the signal: 143 for SIGTERM, 130 for Ctrl-C, 129 for SIGHUP
        _say(f"stopped by {stop.reason}: every output is closed whole" + (f"; {failed} sources had failed before" if failed else ""))
        sys.exit(stop.exit_code)
    if failed:
        raise PRPError(f"{failed} of {summary['totals']['sources']} sources failed (their reasons are above"
                       + (f"; {Path(out) / 'summary.json'})" if out is not None and (Path(out) / "summary.json").exists() else ")"))


@main.command("bench")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Export folder (default: the newest under runs/).")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default=None, help="Instead of --model: a random-init model of this shape.")
@click.option("--depth", type=click.Choice([str(d) for d in DEPTHS]), default="10", show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True)
@click.option("--frames", type=int, default=16, show_default=True)
@click.option("--crop", type=int, default=112, show_default=True)
@click.option("--backends", type=CommaList(str, ("auto", *ARTIFACTS, "torch")), default="auto", show_default=True,
              help=f"Comma list of {', '.join([*ARTIFACTS, 'torch'])}; auto = every artefact in the folder (torch, the PyTorch "
                   "reference, only when named: it needs the train extra).")
@click.option("--batch", "batches", type=CommaList(int), default="1,8", show_default=True, help="Batch sizes, comma separated.")
@click.option("--iters", type=click.IntRange(2), default=20, show_default=True)
@click.option("--video", type=click.Path(path_type=Path), default=None, help="Video for the end-to-end run (default: a synthetic test video).")
@click.option("--streams", type=click.IntRange(1), default=1, show_default=True, help="End-to-end: this many copies of the video at once, one engine.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write the results as JSON.")
@click.option("--allow-unverified", is_flag=True, help="Also time model files that parity did not pass.")
def bench_cmd(model, backbone, depth, width, frames, crop, backends, batches, iters, video, streams, json_out, allow_unverified):
    """Backends side by side (clips/s, latency), GFLOP/s against this machine's matmul peak, and pipeline efficiency."""
    import tempfile

    if backbone is not None and model is not None:
        raise PRPError("give --model or --backbone, not both")
    # A random-init export lives in a temp folder for the length of the bench only (it is
    # 100s of MB at the paper's size): removed at the end, on an error and on Ctrl-C alike.
    with tempfile.TemporaryDirectory(prefix="prp-bench-") as scratch:
        if backbone is not None:  # before training: the speed of a shape, on a random-init export
            from .export.random_model import export_random

            model = export_random(backbone, int(depth), width, frames, crop, out=Path(scratch), say=_say)
            # Random weights: a speed measurement, with no accuracy to verify (INT8 parity may fail on them).
            allow_unverified = True
        _bench(model, backends, batches, iters, video, streams, json_out, allow_unverified)


def _bench(model, backends, batches, iters, video, streams, json_out, allow_unverified):
    from .runtime.bench import bench, format_bench
    from .runtime.run import find_model

    model_dir = find_model(model, _say)
    wanted = list(backends)

    def torch_backend():
        from .export.reference import torch_reference  # torch only when the torch backend is benchmarked

        return torch_reference(model_dir)[1]

    extra = {"torch": torch_backend} if "torch" in wanted else {}  # never imported unless asked for
    result = bench(model_dir, wanted, list(batches), iters, video, say=_say, extra=extra, streams=streams, allow_unverified=allow_unverified)
    click.echo(format_bench(result))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2))


@main.command("index")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "library", type=click.Path(path_type=Path), required=True, help="The library folder (made, or added to).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Export folder, .onnx or .plan (default: the library's own model, else the newest export under runs/).")
@click.option("--backend", type=click.Choice(["auto", *ENGINES]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Which artefact of the export.")
@click.option("--stride", type=click.IntRange(1), default=None, help="Source frames between window starts (default: half a window).")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True, help="Windows per engine call.")
@click.option("--topk", type=click.IntRange(1), default=5, show_default=True, help="Labels kept per window and video (a recognizer).")
@click.option("--max-open", type=click.IntRange(1), default=None, help="Sources decoded at once (default: twice the cores).")
@click.option("--commit-every", type=click.IntRange(1), default=64, show_default=True,
              help="Sources per Parquet part: what an interrupted job can lose.")
@click.option("--index", "index_kind", type=click.Choice(["auto", "exact", "ivf"]), default="auto", show_default=True,
              help="FAISS index: auto = exact below 100,000 vectors, IVF above.")
@click.option("--nprobe", type=click.IntRange(1), default=None, help="IVF cells scanned a query (default: those holding about 25,000 vectors).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS|local",
              help="Run on a Ray cluster: 'local' starts one here, else its address (auto, or HOST:PORT).")
@click.option("--actors", type=click.IntRange(1), default=None, help="Ray: engines (actors) at once (default: the cluster's CPUs / --cpus-per-actor).")
@click.option("--cpus-per-actor", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True)
@click.option("--gpus-per-actor", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--sources-per-task", type=click.IntRange(1), default=8, show_default=True,
              help="Ray: sources a task embeds (they share engine batches; an actor that dies redoes at most these).")
@click.option("--allow-unverified", is_flag=True, help="Use a model file that parity did not pass.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--start", type=TimePoint(), default=None, help="Index each file from this time on (seconds or HH:MM:SS), by a seek.")
@click.option("--end", type=TimePoint(), default=None, help="Index each file up to this time.")
def index_cmd(sources, library, model, backend, precision, stride, batch, topk, max_open, commit_every, index_kind, nprobe, ray_address,
              actors, cpus_per_actor, gpus_per_actor, sources_per_task, allow_unverified, quiet, start, end):
    """Embed SOURCES (files, folders, globs, @LIST.txt, URLs) into the video library --out: a row per
    window and per video in Parquet, and FAISS indexes. Run again with more sources: only the new
    ones are embedded. Exit 1 when a source failed (it is recorded with its reason)."""
    from .library import IndexOptions, Library
    from .runtime.run import DEFAULT_MAX_OPEN

    opts = IndexOptions(backend=backend, precision=precision, allow_unverified=allow_unverified, stride=stride, batch=batch, topk=topk,
                        max_open=max_open or DEFAULT_MAX_OPEN, commit_every=commit_every, index=index_kind, nprobe=nprobe,
                        ray=ray_address, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor,
                        sources_per_task=sources_per_task, start=start, end=end,
                        progress=not quiet and sys.stderr.isatty())
    lib = Library(library)
    report = lib.add(list(sources), model, opts, say=_say)
    _say(report.line())
    _say(f"library: {library} ({lib.meta['counts']['videos']} videos, {lib.meta['counts']['windows']} windows; "
         f"index: {lib.meta['index']['videos']})")
    if report.failed:
        raise PRPError(f"{len(report.failed)} source(s) failed and are listed in the library with their reasons "
                       f"(first: {report.failed[0][0]}: {report.failed[0][1]})")


@main.command("search")
@click.argument("query")
@click.option("--library", type=click.Path(path_type=Path), required=True, help="A library made by `prp-deploy index`.")
@click.option("--topk", type=click.IntRange(1), default=10, show_default=True)
@click.option("--by", type=click.Choice(["video", "window"]), default="video", show_default=True,
              help="Rank whole videos, or windows (time spans) of them.")
@click.option("--where", default=None, help="Only hits whose source path (or file name) matches this glob.")
@click.option("--include-self", is_flag=True, help="Keep the query's own source (video) or its overlapping windows among the hits.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "jsonl"]), default="auto", show_default=True,
              help="auto = short lines on a terminal, JSONL in a pipe.")
@click.option("--html", "html_page", type=click.Path(path_type=Path), default=None,
              help="Also write one self-contained page: a thumbnail strip of each hit beside the query's.")
def search_cmd(query, library, topk, by, where, include_self, fmt, html_page):
    """The videos (or windows) of --library nearest to QUERY: a video file, a span of one
    (clip.mp4@12.5-15.0, in seconds), or a source already in the library."""
    from .library import Library
    from .library.page import write_page

    from .library import parse_query

    _check_new_file(html_page, "--html", (".html", ".htm"), [parse_query(query)[0], library])
    lib = Library(library)
    hits = lib.search(query, topk, by, where, include_self, say=_say)
    text = fmt == "text" or (fmt == "auto" and sys.stdout.isatty())
    for h in hits:
        if text:
            span = f"{h.start_s:7.2f}-{h.end_s:7.2f} s" if h.start_s is not None else " " * 17
            label = f"  {h.labels[0][0]} {h.labels[0][1]:.2f}" if h.labels else ""
            click.echo(f"{h.rank:3d}  {h.score:.3f}  {span}  {h.source}{label}")
        else:
            click.echo(json.dumps(h.as_dict()))
    if not hits:
        _say("no hits (the library is empty, or --where matched nothing)")
    if html_page is not None:
        write_page(html_page, lib, query, hits, by)
        _say(f"wrote {html_page}")


@main.command("explain")
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
    from .runtime.explain import explain_video, open_explainer, write_grid, write_video
    from .runtime.file_decoder import Span
    from .runtime.run import find_model

    if out is None and png is None:
        raise UsageError("say where the maps go: --out maps.mp4 and/or --png grid.png")
    Span(start, end)  # --start before --end: a usage error before the model opens
    _check_new_file(out, "--out", (".mp4",), [video])
    _check_new_file(png, "--png", (".png", ".jpg"), [video, out])
    model = find_model(model, _say)
    if model.is_dir() and not (model / "model.json").exists() and (model / "export").is_dir():
        model = model / "export"  # a run folder: its export
    info, backend = open_explainer(model, allow_unverified, _say)
    maps = explain_video(video, info, backend, list(windows) if windows else None, start, end)
    for w in maps:
        what = f"{w.label} {w.score:.2f}" if w.label else "features"
        _say(f"window {w.window} (frames {w.start_frame}-{w.start_frame + len(w.frames) - 1}): {what}")
    if png is not None:
        write_grid(maps, png)
        _say(f"wrote {png}")
    if out is not None:
        write_video(maps, out, info.train_fps)
        _say(f"wrote {out}")


@main.command("report")
@click.argument("run", type=click.Path(path_type=Path), required=False)
def report_cmd(run):
    """Write RUN/report.html (default: the newest run): one self-contained page of the run's results,
    curves, confusion matrices, retrieval examples, explain maps, parity and bench."""
    from .paths import newest_run
    from .reports.html import write_report

    run = run or newest_run()
    if not Path(run).is_dir():
        raise PRPError(f"{run}: no such run folder")
    _say(f"wrote {write_report(run, _say)}")


@main.command("eval")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=None, help="Dataset root (default: the built-in synthetic dataset).")
@click.option("--dataset", type=click.Choice(["ucf101", "hmdb51", "folder"]), default=None, help="The root's layout (see `data`).")
@click.option("--split", type=click.IntRange(1, 3), default=1, show_default=True)
@click.option("--clips", type=click.IntRange(1), default=None, help="Clips per test video (default: the run's, 10).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Result JSON (default: RUN/eval-<dataset>-<folder>.json).")
def eval_cmd(source, data_root, dataset, split, clips, out):
    """Evaluate a checkpoint (RUN, or RUN/<stage>/X.pt) on another dataset: the pretext's playback-rate
    accuracy for a pretrained encoder, recognition for a finetuned model of the same classes, and
    retrieval (test videos query the training videos) for either."""
    try:
        from .training.crosseval import evaluate_on, summary
    except ImportError as e:
        raise PRPError(f"eval needs the train extra (torch): pip install 'prp-deploy[train]' ({e.name} missing)") from None
    if data_root is not None and dataset is None:
        raise UsageError("--data needs --dataset (ucf101, hmdb51 or folder)")
    _check_new_file(out, "--out", (".json",), [source, data_root])  # before minutes of evaluation, not after
    result, path = evaluate_on(source, str(data_root) if data_root else None, dataset, split, out, clips, _say)
    _say(summary(result))
    _say(f"wrote {path}")


def _check_new_file(path, flag: str, suffixes: tuple[str, ...], inputs: list) -> None:
    """An output file of `explain`, `search` or `eval`: a file name with one of `suffixes`, never a folder
    and never one of the command's inputs (nothing the user gave is written over)."""
    if path is None:
        return
    text = str(path)
    if text.endswith(("/", "\\")) or Path(path).is_dir():
        raise UsageError(f"{flag} {text}: names a folder; give a file ({' or '.join(suffixes)})")
    if Path(path).suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {text}: give a {' or '.join(suffixes)} file")
    for other in inputs:
        if other is not None and Path(other).exists() and Path(path).exists() and Path(path).resolve() == Path(other).resolve():
            raise UsageError(f"{flag} {text}: is {other}, which this command reads or writes; choose another file")
        if other is not None and Path(path).absolute() == Path(other).absolute():
            raise UsageError(f"{flag} {text}: is also given as another input or output; choose another file")

