"""`prp-deploy export`: a trained run → checked artefacts in one folder.

DIR/
  model.json            what the runtime needs: classes, clip shape, preprocessing, fps
  model.onnx, ...       the artefacts asked for, one row each of `runtime/artifacts.py`
                        (model.onnx always; model_fp16.onnx with --fp16; model.plan with --trt;
                        model_int8.onnx with --int8, calibrated on the run's training videos)
  parity.json           every artefact × output against the PyTorch FP32 model
  triton/               a Triton model repository (--triton)

Every artefact is compared with the PyTorch FP32 model on real clips decoded through the
runtime's preprocessing, by its row's parity rule; a failed comparison keeps the
artefacts, marks them failed in parity.json, and makes the command exit non-zero.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PRPError
from ..data.preprocess import Preprocess
from ..files import atomic_write
from ..rundir import MODEL_INFO_FILE, newest_run
from ..runtime.artifacts import ARTIFACTS, EXPLAIN_ROW, sha256
from ..runtime.backends import open_artifact
from ..runtime.model_info import parse_model_info
from ..runtime.speed import compare_latency, speed_line
from .build import BuildInputs, build_order, builder, wanted_rows
from ..reports.html import refresh_report
from .explain_graph import explain_outputs, explain_reference
from .int8 import Int8Options
from .int8_data import calibration
from .int8_judge import paired_flips
from .metadata import gflops_per_clip, model_metadata, preprocess_of
from .parity import INT8_RULES, MIN_JUDGED, Check, ParityReport, compare
from .parity_clips import parity_videos, real_clips, run_batched, run_index, video_predictions
from .tensorrt_build import Int8Declined, TensorRTUnavailable
from .torch_backend import LoadedModel, TorchBackend, load_model, resolve_checkpoint


@dataclass
class ExportOptions:
    stage: str = "finetune"  # finetune (the action recogniser) | pretrain (the encoder's features)
    out: Path | None = None
    fp16: bool = False
    trt: bool = False
    triton: bool = False
    batch: tuple[int, int, int] = (1, 8, 32)
    parity_clips: int = 64  # over the classes in turn; INT8's agreement needs enough clips with a clear margin
    parity_videos: list[Path] = field(default_factory=list)
    atol: float = 1e-4
    rtol: float = 1e-4
    random_clips: int = 2
    verify_only: bool = False  # re-check existing artefacts, build nothing
    int8: bool = False
    int8_options: Int8Options = field(default_factory=Int8Options)
    accuracy_check: bool = True  # INT8: video-level top-1 on the test videos against FP32 (off for a random-init bench model)

    def wanted(self) -> set[str]:
        """The artefact table's rows this export makes: those whose `asked_by` flags are all given."""
        return wanted_rows({flag for flag in ("fp16", "trt", "int8") if getattr(self, flag)})


@dataclass
class ExportResult:
    out: Path
    report: ParityReport
    artifacts: list[str]  # files checked now
    not_built: dict[str, str] = field(default_factory=dict)  # file → why an asked-for artefact was not built
    missing_tensorrt: bool = False  # every one of those for want of TensorRT or a GPU here (exit 2, not 1)
    speed: list[str] = field(default_factory=list)  # a line per INT8 artefact: faster than FP32 here or not
    declined: dict[str, str] = field(default_factory=dict)  # file → why the INT8 rule declined to build it (not a failure)

    @property
    def trt_unavailable(self) -> str | None:
        return self.not_built.get(ARTIFACTS["tensorrt"].file)


def parse_batch(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise PRPError(f"--batch wants MIN:OPT:MAX, got {text!r}") from None
    if not 1 <= lo <= opt <= hi:
        raise PRPError(f"--batch needs 1 <= MIN <= OPT <= MAX, got {text}")
    return lo, opt, hi


def accuracy_checks(int8: dict, reference, videos, spec) -> list[Check]:
    """Video-level top-1 (10 clips a video) of each INT8 backend against the FP32 reference on
    the test videos, with the paired flips and what that many videos can tell."""
    p = video_predictions({"fp32": reference, **int8}, videos, spec)
    labels, rule = p["labels"], INT8_RULES["max_accuracy_drop"]
    top1 = {name: 100.0 * float((p[name] == labels).mean()) for name in p if name != "labels"}
    checks = []
    for artifact, backend in int8.items():
        drop = top1["fp32"] - top1[artifact]
        flips = paired_flips(p["fp32"] == labels, p[artifact] == labels, rule)
        checks.append(Check(artifact, backend.name, "video_top1", "test videos", "int8", len(labels),
                            stats={"fp32_top1": top1["fp32"], "top1": top1[artifact], "accuracy_drop": drop, **flips},
                            thresholds={"max_accuracy_drop": rule, "rule": "video-level top-1 within max_accuracy_drop points of FP32"},
                            passed=drop <= rule))
    return checks


def int8_speed(opened: dict, clip_shape) -> dict:
    """FP32 against INT8 latency on this machine (runtime/speed.py), for each INT8 artefact that
    backend auto may serve where it is faster: measured beside the verdict, never assumed."""
    if "onnxruntime" not in opened:
        return {}
    return {name: compare_latency(opened["onnxruntime"], backend, clip_shape)
            for name, backend in opened.items() if ARTIFACTS[name].auto_if_faster}


def _without_nulls(value):
    """parity.json holds no null: OpenCV's JSON reader, which the C++ example reads it with,
    rejects null, and an absent key says the same."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _previous(report: Path, key: str) -> dict:
    """One object of an earlier parity.json ({} when there is none or it does not read)."""
    try:
        return json.loads(report.read_text()).get(key, {}) if report.exists() else {}
    except (OSError, ValueError):
        return {}


def _build_rows(planned: list, inputs: BuildInputs, say) -> tuple[dict, dict, dict]:
    """Each planned row built, sources first: (facts by row name, not built: name → (why, for want
    of TensorRT or a GPU), declined: file → why an engine was not built by the INT8 rule)."""
    not_built: dict[str, tuple[str, bool]] = {}
    declined: dict[str, str] = {}
    for a in planned:
        if a.source in not_built:
            not_built[a.name] = (f"its source {ARTIFACTS[a.source].file} was not built", not_built[a.source][1])
            say(f"export: {a.file} not built: {not_built[a.name][0]}")
            continue
        try:
            inputs.built[a.name] = builder(a)(a, inputs)
        except Int8Declined as e:  # not a failure: the rule said no, and the FP16 engine serves
            declined[a.file] = str(e)
            say(f"export: {a.file} not built: {e}")
        except PRPError as e:
            if not a.needs_gpu:
                raise
            # An engine that cannot be built here (no TensorRT or GPU, or a build that failed):
            # the other artefacts still ship, and the failure is said, recorded and exits non-zero.
            not_built[a.name] = (str(e), isinstance(e, TensorRTUnavailable))
            say(f"export: {a.file} not built: {e}")
    return inputs.built, not_built, declined


@dataclass
class _Source:
    """What an export reads from its run: the checkpoint's model, its reference and model.json."""
    ckpt: Path
    model: LoadedModel
    out: Path
    spec: Preprocess
    clip_shape: tuple[int, int, int, int]
    torch_ref: TorchBackend
    meta: dict


def _load_source(source: Path | None, opts: ExportOptions) -> _Source:
    source = Path(source) if source else newest_run()
    ckpt = resolve_checkpoint(source, opts.stage)
    model = load_model(ckpt, opts.stage)
    out = Path(opts.out) if opts.out else (source if source.is_dir() else ckpt.parent.parent) / "export"
    out.mkdir(parents=True, exist_ok=True)
    spec = preprocess_of(model.state)
    clip_shape = (3, spec.frames, spec.crop, spec.crop)
    torch_ref = TorchBackend(model)
    feature_dim = int(torch_ref.run(np.zeros((1, *clip_shape), np.float32))["features"].shape[1])
    meta = {**model_metadata(model, feature_dim), "gflops_per_clip": gflops_per_clip(model.module, clip_shape)}
    parse_model_info(meta, "model metadata")  # what the runtime will read must parse
    return _Source(ckpt, model, out, spec, clip_shape, torch_ref, meta)


def export(source: Path | None, opts: ExportOptions, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> ExportResult:
    """Build the artefacts `opts` asks for from a run (default: the newest), check each against the
    PyTorch FP32 model on real clips, and write parity.json beside them (see the module's docstring)."""
    src = _load_source(source, opts)
    out, model = src.out, src.model
    # The run's dataset split, read once: its test videos judge, its training videos calibrate INT8.
    index = run_index(model, say) if not opts.parity_videos or opts.int8 else None
    planned = build_order(opts.wanted())
    facts, not_built, declined = _build(src, opts, index, planned, say)
    rows = [a for a in ARTIFACTS.values() if (out / a.file).exists() and a.name not in not_built and (opts.verify_only or a in planned)]
    report, opened, unchecked = _check_parity(src, opts, index, rows, say)
    checked = [ARTIFACTS[n].file for n in opened]
    sources_declined = {ARTIFACTS[a.source].file for a in ARTIFACTS.values() if a.file in declined}
    for c in report.checks:  # a graph whose engine was declined serves nothing: its checks inform, the export stands without it
        c.gating = c.gating and c.artifact not in sources_declined
    speed = int8_speed(opened, src.clip_shape)
    lines = [speed_line(ARTIFACTS[n].file, r, report.artifact_passed(ARTIFACTS[n].file)) for n, r in speed.items()]
    for line in lines:
        say(f"export: {line}")
    # Artefacts left from an earlier export that this one did not rebuild: kept (an engine is
    # costly to rebuild), but named, since they may no longer match model.onnx.
    stale = [a.file for a in ARTIFACTS.values() if (out / a.file).exists() and a.file not in checked]
    for name in stale:
        say(f"export: {name} is from an earlier export and was not rebuilt or checked now")
    # Each checked artefact's sha256: the runtime refuses a file that is not the one judged here.
    hashes = {name: sha256(out / name) for name in checked}
    previous = _previous(out / "parity.json", "sha256")
    for name in (n for n in checked if previous.get(n) not in (None, hashes[n]) and opts.verify_only):
        say(f"export: {name} changed since the last parity check (sha256 differs); judged again now")
    report_dict = {**report.to_dict(), "source": str(src.ckpt), "build": facts, "tensorrt_skipped": not_built.get("tensorrt", (None,))[0],
                   "not_checked": stale, "not_built": {ARTIFACTS[n].file: why for n, (why, _) in not_built.items()}, "not_opened": unchecked,
                   "sha256": hashes, "speed": {ARTIFACTS[n].file: r for n, r in speed.items()}, "declined": declined or None}
    atomic_write(out / "parity.json", json.dumps(_without_nulls(report_dict), indent=2))
    if opts.triton:
        from .triton import write_repository

        outputs = {o: int(src.meta["outputs"][o][1]) for o in model.outputs}
        for d in write_repository(out, f"prp_{src.meta['backbone']['backbone']}_{model.kind}", src.clip_shape, outputs, opts.batch, say):
            say(f"triton: {d}")
    if (out.parent / "eval.json").exists() and out.name == "export":  # a run's own export: its report shows the new parity
        refresh_report(out.parent, say)
    return ExportResult(out, report, checked, {ARTIFACTS[n].file: why for n, (why, _) in not_built.items()},
                        bool(not_built) and all(missing for _, missing in not_built.values()), lines, declined)


def _build(src: _Source, opts: ExportOptions, index, planned: list, say) -> tuple[dict, dict, dict]:
    """(build facts, not built: name → (why, for want of TensorRT or a GPU), declined: file → why); nothing with --verify-only."""
    if opts.verify_only:
        return {}, {}, _previous(src.out / "parity.json", "declined")  # what the build declined stays declined when re-checked
    for leftover in src.out.glob(".*.tmp"):  # temp files of an export killed mid-write (atomic_write renames only whole files)
        leftover.unlink(missing_ok=True)
    say(f"export: {src.ckpt} ({src.model.kind}, {src.meta['backbone']['backbone']}) → {src.out}")
    atomic_write(src.out / MODEL_INFO_FILE, json.dumps(src.meta, indent=2))
    calib = calibration(index, src.model.state.get("config", {}), src.spec, opts.int8_options.calib_clips, say,
                        opts.int8_options.fallback) if opts.int8 else None
    inputs = BuildInputs(src.model, src.clip_shape, src.meta, opts.batch, src.out, opts.int8_options, calib, say)
    return _build_rows(planned, inputs, say)


def _check_parity(src: _Source, opts: ExportOptions, index, rows: list, say) -> tuple[ParityReport, dict, dict]:
    """The same real clips through every artefact and the PyTorch FP32 model: (report, name → opened
    backend, file → why it could not be opened here)."""
    clips, used = real_clips(parity_videos(opts.parity_videos, index), src.spec, opts.parity_clips)
    random = np.random.default_rng(0).random((opts.random_clips, *src.clip_shape), dtype=np.float32)
    ref, ref_random = src.torch_ref.run(clips), (src.torch_ref.run(random) if opts.random_clips else {})
    report = ParityReport(clips=len(clips), videos=used)
    int8: dict = {}  # INT8 backends, judged on the test videos too, in one decoding pass
    opened, unchecked = {}, {}
    for a in rows:
        try:
            backend = open_artifact(src.out / a.file, a, "cpu", verify=False)
        except PRPError as e:
            if not a.needs_gpu:
                raise
            unchecked[a.file] = str(e)
            say(f"export: {a.file} cannot be opened here, not checked: {e}")
            continue
        opened[a.name] = backend
        references, outputs = (("real", ref), ("random", ref_random)), src.model.outputs
        if a.name == EXPLAIN_ROW:  # its maps too, against the PyTorch model's own
            explain_ref = explain_reference(src.model)
            references = (("real", explain_ref.run(clips)), ("random", explain_ref.run(random) if opts.random_clips else {}))
            outputs = explain_outputs(src.model)
        for inputs, reference in references:
            if reference:
                report.checks += _compare_outputs(a, backend, reference, clips if inputs == "real" else random, inputs, outputs, opts)
        if a.parity == "int8" and opts.accuracy_check and not opts.parity_videos and "logits" in src.model.outputs:
            int8[a.file] = backend
    if int8:
        report.checks += accuracy_checks(int8, src.torch_ref, index.test, src.spec)
    return report, opened, unchecked


def _compare_outputs(a, backend, reference: dict, inputs_array: np.ndarray, inputs: str, outputs, opts: ExportOptions) -> list[Check]:
    got = run_batched(backend, inputs_array)
    checks = []
    for output in outputs:
        c = compare(reference[output], got.get(output, np.empty(0)), output, a.parity, opts.atol, opts.rtol,
                    min_judged=MIN_JUDGED if inputs == "real" else 0,  # random tensors: reported, never judged
                    artifact=a.file, backend=backend.name, inputs=inputs)
        c.gating = inputs == "real"  # random tensors are reported, not judged: they are not video
        checks.append(c)
    return checks
