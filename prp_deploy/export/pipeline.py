"""`prp-deploy export`: a trained run → checked artefacts in one folder.

DIR/
  model.onnx            FP32, always, with its metadata
  model_fp16.onnx       FP16 weights and math, FP32 I/O (--fp16, implied by --trt)
  model.plan(.json)     FP16 TensorRT engine and the facts of its build (--trt)
  model.json            what the runtime needs: classes, clip shape, preprocessing, fps
  parity.json           every artefact × output against the PyTorch FP32 model
  triton/               a Triton model repository (--triton)

Every artefact is compared with the PyTorch FP32 model on real clips decoded through the
runtime's preprocessing; a failed comparison keeps the artefacts, marks them failed in
parity.json, and makes the command exit non-zero.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.clips import EvalClips
from ..data.datasets import VIDEO_EXTENSIONS, Video, load_index
from ..data.preprocess import Preprocess
from ..data.tasks import resolve_index
from ..errors import PRPError
from ..runtime.backends import OnnxRuntimeBackend, TensorRTBackend
from ..runtime.model_info import MODEL_SCHEMA_VERSION, parse_model_info, read_model_info
from ..training.checkpoint import load_checkpoint
from ..training.common import versions
from ..training.pipeline import newest_run
from .onnx_export import convert_fp16, export_onnx
from .parity import ParityReport, compare
from .torch_backend import LoadedModel, TorchBackend, load_model, resolve_checkpoint

RESIZE_RULE = "short side to short_side, long side round(short_side * aspect), area average when shrinking, bilinear when enlarging; then center crop"


@dataclass
class ExportOptions:
    stage: str = "finetune"  # finetune (the action recogniser) | pretrain (the encoder's features)
    out: Path | None = None
    fp16: bool = False
    trt: bool = False
    triton: bool = False
    batch: tuple[int, int, int] = (1, 8, 32)
    parity_clips: int = 32
    parity_videos: list[Path] = field(default_factory=list)
    atol: float = 1e-4
    rtol: float = 1e-4
    random_clips: int = 2
    verify_only: bool = False  # re-check existing artefacts, build nothing


@dataclass
class ExportResult:
    out: Path
    report: ParityReport
    artifacts: list[str]
    trt_unavailable: str | None = None


def parse_batch(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise PRPError(f"--batch wants MIN:OPT:MAX, got {text!r}") from None
    if not 1 <= lo <= opt <= hi:
        raise PRPError(f"--batch needs 1 <= MIN <= OPT <= MAX, got {text}")
    return lo, opt, hi


def preprocess_of_checkpoint(state: dict) -> Preprocess:
    if "preprocess" in state:
        return Preprocess.from_dict(state["preprocess"])
    d = state["config"]["data"]
    return Preprocess(short_side=d["short_side"], crop=d["crop"], frames=d["frames"], sample_rate=1, mean=tuple(d["mean"]), std=tuple(d["std"]))


def model_metadata(model: LoadedModel, spec: Preprocess, feature_dim: int) -> dict:
    state = model.state
    classes = list(state.get("classes", [])) if model.kind == "recognizer" else []
    outputs = {"features": [-1, feature_dim]}
    if classes:
        outputs = {"logits": [-1, len(classes)], **outputs}
    cfg = state.get("config", {})
    return {
        "schema_version": MODEL_SCHEMA_VERSION,
        "kind": model.kind,
        "classes": classes,
        "input": {"name": "clip", "shape": [-1, 3, spec.frames, spec.crop, spec.crop], "dtype": "float32", "layout": "NCTHW"},
        "outputs": outputs,
        "preprocess": {**spec.to_dict(), "resize_rule": RESIZE_RULE},
        "sample_rate": spec.sample_rate,
        "train_fps": float(state.get("train_fps") or 0.0),
        "backbone": state["encoder"],
        "objective": cfg.get("pretrain", {}).get("objective"),
        "dataset": state.get("dataset") or cfg.get("data", {}).get("dataset"),
        "config_hash": _config_hash(cfg),
        "source": {"checkpoint": str(model.checkpoint), "stage": state.get("stage"), "epoch": state.get("epoch")},
        "versions": versions(),
    }


def without_none(d):
    """The same JSON tree without null values (keys whose value is unknown are left out)."""
    if isinstance(d, dict):
        return {k: without_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [without_none(v) for v in d if v is not None]
    return d


def gflops_per_clip(module: torch.nn.Module, clip_shape) -> float:
    """Forward FLOPs of one clip (multiply-add = 2 FLOPs), for the runtime's GFLOP/s figures."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *clip_shape))
    return counter.get_total_flops() / 1e9


def _config_hash(cfg: dict) -> str | None:
    if not cfg:
        return None
    from ..training.config import TrainConfig, _merge

    try:
        d = {k: v for k, v in cfg.items() if k not in ("schema_version", "preset")}
        return _merge(TrainConfig(), d, "checkpoint config").hash()
    except PRPError:
        return None


def torch_reference(model: Path):
    """(ModelInfo, TorchBackend) for `--backend torch`: an export folder (its source checkpoint), a run folder or a .pt."""
    model = Path(model)
    if model.is_dir() and (model / "model.json").exists():
        info = read_model_info(model)
        ckpt = Path(info.raw["source"]["checkpoint"])
        if not ckpt.exists():
            raise PRPError(f"{model}: its checkpoint {ckpt} is not here; --backend torch needs the run folder or checkpoint")
        stage = "finetune" if info.kind == "recognizer" else "pretrain"
    else:
        stage = "finetune" if not model.is_dir() or (model / "finetune" / "best.pt").exists() else "pretrain"
        ckpt = resolve_checkpoint(model, stage)
    loaded = load_model(ckpt, "finetune" if load_checkpoint(ckpt).get("stage") == "finetune" else "pretrain")
    backend = TorchBackend(loaded)
    spec = preprocess_of_checkpoint(loaded.state)
    with torch.no_grad():
        dim = int(backend.run(np.zeros((1, 3, spec.frames, spec.crop, spec.crop), np.float32))["features"].shape[1])
    return parse_model_info(without_none(model_metadata(loaded, spec, dim)), str(ckpt)), backend


def parity_videos(model: LoadedModel, explicit: list[Path], say) -> list[Video]:
    """The run's test-set videos, else the files given, else the built-in synthetic set."""
    if explicit:
        files = []
        for p in explicit:
            p = Path(p)
            if p.is_dir():
                files += sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_EXTENSIONS)
            elif p.exists():
                files.append(p)
            else:
                raise PRPError(f"--parity-videos: {p}: no such file or folder")
        if not files:
            raise PRPError("--parity-videos: no video files found")
        return [Video(f, 0) for f in files]
    d = model.state.get("config", {}).get("data", {})
    try:
        if d.get("data"):
            index = load_index(Path(d["data"]), d["dataset"], d.get("split", 1))
            say(f"parity clips from the run's test set: {index.root} ({index.name} split {index.split})")
        else:
            index = resolve_index(None, None, d.get("split", 1), say)
        return list(index.test)
    except PRPError as e:
        say(f"the run's dataset is not readable here ({e}); using the built-in synthetic dataset")
        return list(resolve_index(None, None, 1, say).test)


def real_clips(videos: list[Video], spec: Preprocess, n: int) -> tuple[np.ndarray, list[str]]:
    """n clips (N, 3, T, crop, crop) spread over the videos, through the runtime's preprocessing."""
    per_video = max(1, min(4, math.ceil(n / max(1, len(videos)))))
    clips, used = [], []
    ds = EvalClips(videos, spec, per_video)
    for i in range(len(videos)):
        if sum(len(c) for c in clips) >= n:
            break
        item = ds[i]
        if item is None:
            continue
        clips.append(item["clips"])
        used.append(str(videos[i].path))
    if not clips:
        raise PRPError("no parity clip could be decoded from the chosen videos")
    return np.concatenate(clips)[:n], used


def _run_batched(backend, clips: np.ndarray, max_batch: int | None) -> dict[str, np.ndarray]:
    step = max_batch or len(clips)
    parts = [backend.run(clips[i : i + step]) for i in range(0, len(clips), step)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def export(source: Path | None, opts: ExportOptions, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> ExportResult:
    source = Path(source) if source else newest_run()
    ckpt = resolve_checkpoint(source, opts.stage)
    model = load_model(ckpt, opts.stage)
    out = Path(opts.out) if opts.out else (source if source.is_dir() else ckpt.parent.parent) / "export"
    out.mkdir(parents=True, exist_ok=True)
    spec = preprocess_of_checkpoint(model.state)
    clip_shape = (3, spec.frames, spec.crop, spec.crop)
    torch_ref = TorchBackend(model)
    with torch.no_grad():
        feature_dim = int(torch_ref.run(np.zeros((1, *clip_shape), np.float32))["features"].shape[1])
    meta = model_metadata(model, spec, feature_dim)
    meta["gflops_per_clip"] = gflops_per_clip(model.module, clip_shape)
    meta = without_none(meta)  # OpenCV's JSON reader (the C++ example) rejects null
    parse_model_info(meta, "model metadata")  # what the runtime will read must parse
    fp16 = opts.fp16 or opts.trt
    onnx_path, fp16_path, plan_path = out / "model.onnx", out / "model_fp16.onnx", out / "model.plan"
    facts: dict = {}
    if not opts.verify_only:
        say(f"export: {ckpt} ({model.kind}, {meta['backbone']['backbone']}) → {out}")
        (out / "model.json").write_text(json.dumps(meta, indent=2))
        facts["onnx"] = export_onnx(model.module, model.outputs, clip_shape, onnx_path, meta)
        if fp16:
            facts["fp16"] = convert_fp16(onnx_path, fp16_path)
    artifacts = [p.name for p in (onnx_path, fp16_path) if p.exists() and (p == onnx_path or fp16)]
    trt_reason = None
    if opts.trt and not opts.verify_only:
        from .tensorrt_build import TensorRTUnavailable, build_engine

        try:
            facts["tensorrt"] = build_engine(fp16_path, plan_path, opts.batch, clip_shape, timing_cache=out / "timing.cache")
        except TensorRTUnavailable as e:
            trt_reason = str(e)
    if plan_path.exists() and (opts.trt or opts.verify_only) and trt_reason is None:
        artifacts.append(plan_path.name)

    # Parity: the same real clips through every artefact and the PyTorch FP32 model.
    videos = parity_videos(model, opts.parity_videos, say)
    clips, used = real_clips(videos, spec, opts.parity_clips)
    rng = np.random.default_rng(0)
    random = rng.random((opts.random_clips, *clip_shape), dtype=np.float32)
    ref = torch_ref.run(clips)
    ref_random = torch_ref.run(random) if opts.random_clips else {}
    report = ParityReport(clips=len(clips), videos=used)
    for name in artifacts:
        path = out / name
        try:
            backend = TensorRTBackend(path) if name.endswith(".plan") else OnnxRuntimeBackend(path)
        except PRPError as e:
            if name.endswith(".plan"):
                trt_reason = trt_reason or str(e)
                continue
            raise
        precision = "fp32" if name == "model.onnx" else "fp16"
        got = _run_batched(backend, clips, getattr(backend, "max_batch", None))
        for output in model.outputs:
            report.checks.append(compare(ref[output], got.get(output, np.empty(0)), output, precision, opts.atol, opts.rtol,
                                         artifact=name, backend=backend.name, inputs="real"))
        if opts.random_clips:
            got_r = _run_batched(backend, random, getattr(backend, "max_batch", None))
            for output in model.outputs:
                c = compare(ref_random[output], got_r[output], output, precision, opts.atol, opts.rtol, artifact=name, backend=backend.name, inputs="random")
                c.gating = False
                report.checks.append(c)
    # Artefacts left from an earlier export that this one did not rebuild: kept (an engine is
    # costly to rebuild), but named, since they may no longer match model.onnx.
    stale = [p.name for p in (fp16_path, plan_path) if p.exists() and p.name not in artifacts]
    for name in stale:
        say(f"export: {name} is from an earlier export and was not rebuilt or checked now")
    report_dict = {**report.to_dict(), "source": str(ckpt), "build": facts, "tensorrt_skipped": trt_reason, "not_checked": stale}
    tmp = out / ".parity.json.tmp"
    tmp.write_text(json.dumps(report_dict, indent=2))
    tmp.replace(out / "parity.json")
    if opts.triton:
        from .triton import write_repository

        outputs = {o: int(meta["outputs"][o][1]) for o in model.outputs}
        name = f"prp_{meta['backbone']['backbone']}_{model.kind}"
        for d in write_repository(out, name, clip_shape, outputs, opts.batch):
            say(f"triton: {d}")
    return ExportResult(out, report, artifacts, trt_reason)
