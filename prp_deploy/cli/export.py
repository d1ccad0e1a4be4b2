"""The export side: `export` (ONNX / FP16 / INT8 / TensorRT, parity-checked) and `bench` (backends side by side)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..clitypes import CommaList
from ..errors import PRPError
from ..models.registry import BACKBONES, DEPTHS
from ..runtime.artifacts import ARTIFACTS, by_file

from .common import say


@click.command("export")
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
    from ..export.int8 import Int8Options
    from ..export.pipeline import ExportOptions, export, parse_batch

    opts = ExportOptions(stage=stage, out=out, fp16=fp16, trt=trt, triton=triton, batch=parse_batch(batch), parity_clips=parity_clips,
                         parity_videos=list(parity_videos), atol=atol, rtol=rtol, verify_only=verify_only, int8=int8,
                         int8_options=Int8Options(calib_clips, calib_method, tuple(int8_exclude or ()), engine=int8_engine,
                                                      trt_int8_anyway=trt_int8_anyway))
    result = export(source, opts, say=say)
    click.echo(result.report.table())
    for line in [*result.speed, *(f"{file} not built: {why}" for file, why in result.declined.items())]:
        click.echo(line)
    click.echo(f"artefacts in {result.out}: {', '.join(result.artifacts)}; report {result.out / 'parity.json'}")
    if not result.report.passed:
        failed = result.report.failed() or result.artifacts  # none judged at all: every one of them
        hint = ""
        if any(by_file(a) is not None and by_file(a).precision == "int8" for a in failed):
            from ..export.int8 import REMEDY_HINT

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


@click.command("bench")
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
            from ..export.random_model import export_random

            model = export_random(backbone, int(depth), width, frames, crop, out=Path(scratch), say=say)
            # Random weights: a speed measurement, with no accuracy to verify (INT8 parity may fail on them).
            allow_unverified = True
        _bench(model, backends, batches, iters, video, streams, json_out, allow_unverified)


def _bench(model, backends, batches, iters, video, streams, json_out, allow_unverified):
    from ..runtime.bench import bench, format_bench
    from ..runtime.run import find_model

    model_dir = find_model(model, say)
    wanted = list(backends)

    def torch_backend():
        from ..export.reference import torch_reference  # torch only when the torch backend is benchmarked

        return torch_reference(model_dir)[1]

    extra = {"torch": torch_backend} if "torch" in wanted else {}  # never imported unless asked for
    result = bench(model_dir, wanted, list(batches), iters, video, say=say, extra=extra, streams=streams, allow_unverified=allow_unverified)
    click.echo(format_bench(result))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2))
