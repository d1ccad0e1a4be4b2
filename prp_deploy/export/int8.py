"""INT8: ONNX Runtime static quantisation of the FP32 graph (QDQ: per-channel symmetric INT8
weights, UINT8 activations), calibrated on clips of the run's *training* videos.

The QDQ graph runs in ONNX Runtime's CPU kernels (integer convolutions) and is what
TensorRT's explicit-quantisation mode consumes for an INT8 engine. When plain quantisation
loses too much, what the field does is tried in order (first and last layers kept in
FP32, then percentile and entropy calibration; more clips made fidelity worse, see
docs/results.md). Each attempt is judged by the criteria the final parity verdict uses,
video-level top-1 included, with half their error budget, on held-back *training* data
(clips, and whole videos at 10 clips each), never on the test videos parity judges the
chosen graph by. When no attempt passes, the best is kept for parity to judge and the log
says what to try. The export log, parity.json and model.json say which step was needed.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import PRPError
from ..files import atomic_write
from ..runtime.artifacts import ARTIFACTS
from .onnx_export import attach_metadata
from .parity import INT8_RULES, judge_int8

METHODS = ("minmax", "entropy", "percentile")


@dataclass
class Int8Options:
    calib_clips: int = 64  # enough for stable ranges on the tiny preset: docs/results.md
    method: str = "minmax"
    exclude: tuple[str, ...] = ()  # node names kept in FP32 (--int8-exclude)
    fallback: bool = True  # try the field's remedies when plain quantisation loses too much


@dataclass
class Calibration:
    clips: np.ndarray  # (N, 3, T, crop, crop), from training videos
    videos: list[str]
    check: np.ndarray  # held-back training clips the remedies are judged on (empty: no remedies)
    check_videos: list = field(default_factory=list)  # held-back training videos (data.Video): video-level top-1
    spec: object = None  # the Preprocess that turns those videos into clips
    # The FP32 graph on the held-back data, worked out once per export and shared by every
    # INT8 row's ladder (UINT8 and, with --trt, the symmetric source).
    fp32_clips: dict | None = None  # output → (N, ...) on `check`
    fp32_videos: np.ndarray | None = None  # video-level predictions on `check_videos`


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array of clips, a few at a time."""

    def __init__(self, clips: np.ndarray, input_name: str, batch: int = 8):
        self.batches = iter([{input_name: clips[i : i + batch]} for i in range(0, len(clips), batch)])

    def get_next(self):
        return next(self.batches, None)


def _conv_like_nodes(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


@contextmanager
def preprocessed(fp32: Path):
    """ORT's quantisation pre-processing (shape inference, fusions), once for every attempt: a temp file."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        yield pre


def first_and_last_layers(pre: Path) -> tuple[str, ...]:
    """The first and last Conv/Gemm/MatMul of a pre-processed graph."""
    nodes = _conv_like_nodes(onnx.load(str(pre)))
    return tuple(dict.fromkeys([nodes[0], nodes[-1]])) if nodes else ()


# Activations: "uint8" (asymmetric UINT8, ONNX Runtime's CPU default) or "int8" (signed,
# symmetric, zero point 0, biases left in float): TensorRT's explicit quantisation takes only
# the second (onnx-tensorrt refuses a non-zero or UINT8 zero point, and a DequantizeLinear of
# an INT32 bias).
ACTIVATIONS = ("uint8", "int8")
FORMATS = {"uint8": "QDQ, per-channel symmetric INT8 weights, asymmetric UINT8 activations, INT32 biases",
           "int8": "QDQ, per-channel symmetric INT8 weights, symmetric INT8 activations (zero point 0), float biases"}


def quantize(pre: Path, dst: Path, clips: np.ndarray, method: str, exclude: tuple[str, ...], meta: dict | None = None,
             activations: str = "uint8") -> None:
    """A QDQ graph of the pre-processed `pre`, written to `dst` (with `meta` as its prp_deploy metadata)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if activations not in ACTIVATIONS:
        raise PRPError(f"INT8 activations must be one of {', '.join(ACTIVATIONS)}, got {activations!r}")
    if method not in METHODS:
        raise PRPError(f"--calib-method must be one of {', '.join(METHODS)}, got {method!r}")
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]
    known = set(_conv_like_nodes(onnx.load(str(pre))))
    unknown = [n for n in exclude if n not in known]
    if unknown:
        raise PRPError(f"--int8-exclude: no node {unknown[0]!r} in the graph (its Conv/Gemm/MatMul nodes: {', '.join(sorted(known)[:6])}, ...)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        # ORT's histogram calibrators print their progress with print(): kept off our stdout,
        # which belongs to the command's results.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(pre), str(out), _Reader(clips, "clip"), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, calibrate_method=calibrate, nodes_to_exclude=list(exclude),
                            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                            # Not CalibMaxIntermediateOutputs (it would bound memory): in onnxruntime 1.32 it
                            # drops each full set of batches instead of merging its ranges.
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": activations == "int8",
                                           "QuantizeBias": activations != "int8"})
        model = onnx.load(str(out))
    onnx.checker.check_model(model)
    if meta is not None:
        attach_metadata(model, meta)
    atomic_write(dst, lambda p: onnx.save_model(model, str(p)))


REMEDY_HINT = ("try more calibration clips (--calib-clips 256), another --calib-method, or keep the layers that lose "
               "most in FP32 (--int8-exclude NODE,...; parity.json's build lists each attempt); FP16 needs no calibration")


def quantize_checked(fp32: Path, dst: Path, calib: Calibration, opts: Int8Options, outputs: tuple[str, ...], meta: dict, say,
                     activations: str = "uint8") -> dict:
    """Quantise; if the result fails the INT8 rules on the held-back training data, try the
    remedies in order. Returns the facts of the attempt kept: the first that passes, else the
    best (least video-level accuracy lost, then the highest 5th-percentile cosine), whose
    file is the one left at `dst`, with its calibration in the metadata."""
    from ..runtime.backends import OnnxRuntimeBackend
    from .parity_clips import video_predictions

    base = {"clips": len(calib.clips), "videos": len(calib.videos), "check_clips": len(calib.check),
            "check_videos": len(calib.check_videos), "rules": INT8_RULES,
            "activations": activations, "format": FORMATS[activations]}
    judged_videos = bool(calib.check_videos) and "logits" in outputs
    with preprocessed(fp32) as pre:
        attempts = [("plain" if len(calib.check) else "plain, unchecked", opts.method, opts.exclude)]
        if opts.fallback and len(calib.check):
            ends = tuple(dict.fromkeys(opts.exclude + first_and_last_layers(pre)))
            attempts += [("first and last layers in FP32", opts.method, ends)]
            attempts += [(f"{m} calibration, first and last layers in FP32", m, ends) for m in ("percentile", "entropy") if m != opts.method]
        if len(calib.check) and calib.fp32_clips is None:
            calib.fp32_clips = OnnxRuntimeBackend(fp32).run(calib.check)
        reference = calib.fp32_clips if len(calib.check) else None
        tried = []

        def write(what, method, exclude):
            kept = {"remedy": what, "method": method, "excluded": list(exclude)}
            quantize(pre, dst, calib.clips, method, exclude, {**meta, "int8_calibration": {**kept, **base}}, activations)
            return kept

        for what, method, exclude in attempts:
            kept = write(what, method, exclude)
            if reference is None:  # a bench model: no remedies asked for, judged at parity only
                break
            candidate = OnnxRuntimeBackend(dst)
            got = candidate.run(calib.check)
            verdict = judge_int8({o: reference[o] for o in outputs}, {o: got[o] for o in outputs})
            if judged_videos:  # the parity verdict's own measure: video-level top-1 against FP32
                first = calib.fp32_videos is None  # the FP32 graph rides along the first attempt's decoding pass
                p = video_predictions({"int8": candidate, **({"fp32": OnnxRuntimeBackend(fp32)} if first else {})}, calib.check_videos, calib.spec)
                if first:
                    calib.fp32_videos = p["fp32"]
                fp32_videos = calib.fp32_videos
                drop = 100.0 * float((fp32_videos == p["labels"]).mean() - (p["int8"] == p["labels"]).mean())
                verdict["stats"]["video_accuracy_drop"] = drop
                verdict["stats"]["video_flips"] = int((fp32_videos != p["int8"]).sum())
                verdict["thresholds"]["video_accuracy_drop"] = INT8_RULES["max_accuracy_drop"] / 2
                verdict["passed"] = verdict["passed"] and drop <= INT8_RULES["max_accuracy_drop"] / 2
            tried.append({**kept, "passed": verdict["passed"], "stats": verdict["stats"], "thresholds": verdict["thresholds"]})
            say(f"int8 {dst.name}: {what} ({method}, {len(calib.clips)} calibration clips): {'passes' if verdict['passed'] else 'fails'} on "
                f"held-back training data ({len(calib.check)} clips" + (f", {len(calib.check_videos)} videos" if judged_videos else "")
                + f": {', '.join(f'{k} {v:.4g}' for k, v in verdict['stats'].items())})")
            if verdict["passed"]:
                break
        else:
            if tried:  # nothing passed: keep the best for parity to judge, and say what else there is
                best = min(tried, key=lambda t: (t["stats"].get("video_accuracy_drop", 0.0), -t["stats"].get("features_p5_cosine", 0.0)))
                if best is not tried[-1]:
                    kept = write(best["remedy"], best["method"], best["excluded"])
                say(f"int8 {dst.name}: no remedy passes on the held-back training data; keeping the closest ({best['remedy']}) for parity "
                    f"to judge; {REMEDY_HINT}")
    return {**kept, **base, "attempts": tried, "video_list": calib.videos}


def build_int8(a, x) -> dict:
    """The artefact table's INT8 ONNX row, from its source (FP32 ONNX) and the calibration clips."""
    if x.calibration is None:
        raise PRPError("INT8 needs calibration clips (export --int8 reads them from the run's training videos)")
    return quantize_checked(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.calibration, x.int8, x.model.outputs, x.meta, x.say)


def build_int8_symmetric(a, x) -> dict:
    """The table's TensorRT INT8 source: signed symmetric activations (zero point 0) and float
    biases, the QDQ form TensorRT's explicit quantisation builds; its own remedy ladder."""
    if x.calibration is None:
        raise PRPError("INT8 needs calibration clips (export --int8 reads them from the run's training videos)")
    return quantize_checked(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.calibration, x.int8, x.model.outputs, x.meta, x.say,
                            activations="int8")
