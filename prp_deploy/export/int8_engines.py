"""The quantisation engines INT8 export can use, each a function from a pre-processed FP32
graph and calibration clips to a QDQ graph (onnx.ModelProto). Which one serves which target
was chosen by measurement (docs/results.md, "INT8 by an accuracy-control engine"):

- nncf (CPU, ONNX Runtime): Intel NNCF's post-training quantisation with fast bias
  correction, and with accuracy control: it ranks the quantisers by how much they cost on
  held-back clips and returns the worst to float until the loss is within `max_drop`.
  Activations are per-tensor (a per-channel zero point on the graph input is a QLinearConv
  ONNX Runtime refuses) and post-ReLU ones UINT8: fast in ONNX Runtime, refused by TensorRT.
- modelopt (TensorRT): NVIDIA ModelOpt's ONNX PTQ, signed symmetric Q/DQ with float biases,
  the form TensorRT's explicit quantisation builds. It leaves convs of under 16 channels in
  float unless their kernel is equal in every dimension: `quantised_nodes` says what was.
- ort: ONNX Runtime's own static quantisation (the ladder of earlier releases), kept for
  comparison and for a machine without the others.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import PRPError
from .int8_judge import clip_kl

ENGINES = ("nncf", "modelopt", "ort")
METHODS = ("minmax", "entropy", "percentile")
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class Steering:
    """What an accuracy-control engine steers by: held-back clips and FP32's outputs on them."""

    clips: np.ndarray  # (N, 3, T, crop, crop)
    reference: np.ndarray  # FP32 logits (or features) on them
    output: str  # "logits" | "features"


@contextlib.contextmanager
def _quiet():
    """The engines print progress bars and histograms: kept off our stdout (the command's results)."""
    logging.getLogger("nncf").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def weighted_nodes(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS]


def quantised_nodes(model: onnx.ModelProto) -> dict:
    """Which Conv/Gemm/MatMul of a QDQ graph really run in INT8 (their data input comes from a
    DequantizeLinear) and which stay float: what an engine says it did is not evidence."""
    dequantised = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    weighted = [n for n in model.graph.node if n.op_type in WEIGHTED_OPS]
    q = [n.name for n in weighted if n.input[0] in dequantised]
    return {"int8": len(q), "of": len(weighted), "float": [n.name for n in weighted if n.input[0] not in dequantised]}


def _check_exclude(model: onnx.ModelProto, exclude: tuple[str, ...]) -> None:
    known = set(weighted_nodes(model))
    unknown = [n for n in exclude if n not in known]
    if unknown:
        raise PRPError(f"--int8-exclude: no node {unknown[0]!r} in the graph (its Conv/Gemm/MatMul nodes: {', '.join(sorted(known)[:6])}, ...)")


def _steering_value(steer: Steering, got: np.ndarray, idx: np.ndarray, flip_weight: float) -> np.ndarray:
    """Per clip, higher is better, 1 for FP32 itself (not 0: NNCF divides by it): one minus the
    KL of the logits, minus one more for a changed top-1 (features: the cosine). Sensitive long
    before top-1 moves, so the engine's first check cannot pass a graph merely because no
    clip flipped yet."""
    ref = steer.reference[idx]
    if steer.output == "logits":
        return 1.0 - clip_kl(ref, got) - flip_weight * (ref.argmax(1) != got.argmax(1))
    return (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-30)


def nncf_quantize(pre: Path, clips: np.ndarray, exclude: tuple[str, ...] = (), steer: Steering | None = None,
                  max_drop: float = 0.003, flip_weight: float = 1.0) -> onnx.ModelProto:
    """NNCF PTQ of `pre`; with `steer`, accuracy control to within `max_drop` of FP32 on the
    steering value (mean over clips of 1 − KL − changed top-1)."""
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix, QuantizationParameters
    except ImportError:
        raise PRPError("INT8 engine nncf is not installed: pip install 'prp-deploy[train]' (or pass --int8-engine ort)") from None
    import onnxruntime as ort

    model = onnx.load(str(pre))
    _check_exclude(model, exclude)
    calib = nncf.Dataset([clips[i : i + 1] for i in range(len(clips))], lambda x: {"clip": x})
    kw = dict(preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(clips),
              ignored_scope=nncf.IgnoredScope(names=list(exclude)) if exclude else None)
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # Ranges from the min and max over all calibration clips (ONNX Runtime's minmax), not
    # NNCF's default mean of per-clip extremes: with one clip an item that clips the motion
    # layers' rare large activations (the plain graph lost 12.5 points; docs/results.md).
    # No overflow fix (7-bit weights): it is for CPUs without VNNI, whose 16-bit accumulation
    # saturates; it cost 3 points of clip agreement here (docs/results.md).
    per_tensor = AdvancedQuantizationParameters(activations_quantization_params=QuantizationParameters(per_channel=False),
                                                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
                                                overflow_fix=OverflowFix.DISABLE)
    with _quiet():
        if steer is None:
            return nncf.quantize(model, calib, advanced_parameters=per_tensor, **kw)
        items = nncf.Dataset([(i, steer.clips[i : i + 1]) for i in range(len(steer.clips))], lambda it: {"clip": it[1]})

        def validate(candidate: onnx.ModelProto, data) -> tuple[float, list[float]]:
            session = ort.InferenceSession(candidate.SerializeToString(), providers=["CPUExecutionProvider"])
            name = session.get_outputs()[[o.name for o in session.get_outputs()].index(steer.output)].name
            data = list(data)
            idx = np.array([i for i, _ in data])
            got = np.concatenate([session.run([name], {"clip": x})[0] for _, x in data])
            values = _steering_value(steer, got, idx, flip_weight)
            return float(values.mean()), [float(v) for v in values]

        return nncf.quantize_with_accuracy_control(model, calib, items, validate, max_drop=max_drop,
                                                   advanced_quantization_parameters=per_tensor, **kw)


@contextlib.contextmanager
def _no_tensorrt_scan():
    """ModelOpt scans a graph for TensorRT plugin ops by building it with TensorRT whenever
    `tensorrt` imports: our export graph holds only standard ONNX ops, so the scan finds
    nothing, and it needs a GPU (or fails on TensorRT's test double). Off, the INT8 graph is
    calibrated on CPU the same with TensorRT installed or not."""
    from modelopt.onnx import trt_utils

    was = trt_utils.TRT_PYTHON_AVAILABLE
    trt_utils.TRT_PYTHON_AVAILABLE = False
    try:
        yield
    finally:
        trt_utils.TRT_PYTHON_AVAILABLE = was


@contextlib.contextmanager
def _ort_quantization_kept():
    """ModelOpt patches ONNX Runtime's calibrators and quantisers in place (its ort_patching)
    and never restores them: ONNX Runtime's own quantize_static in the same process then fails
    ("Quantization parameters are not specified for param clip"). Every class and function of
    those modules is put back as it was once ModelOpt is done."""
    from onnxruntime.quantization import base_quantizer, calibrate, qdq_quantizer

    modules = (base_quantizer, calibrate, qdq_quantizer)
    owners = [*modules, *{v for m in modules for v in vars(m).values() if isinstance(v, type)}]
    saved = [(o, dict(vars(o))) for o in owners]
    try:
        yield
    finally:
        for owner, before in saved:
            for name, value in list(vars(owner).items()):
                if name not in before:
                    delattr(owner, name)
                elif value is not before[name]:
                    setattr(owner, name, before[name])


def modelopt_quantize(pre: Path, clips: np.ndarray, method: str = "max", exclude: tuple[str, ...] = ()) -> onnx.ModelProto:
    """ModelOpt's ONNX INT8 PTQ (signed symmetric, zero point 0, float biases), calibrated on CPU."""
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as e:
        raise PRPError(f"INT8 engine modelopt is not installed ({e}): pip install 'prp-deploy[int8-trt]' (or pass --int8-engine ort)") from None
    _check_exclude(onnx.load(str(pre)), exclude)
    with tempfile.TemporaryDirectory() as tmp, _quiet(), _no_tensorrt_scan(), _ort_quantization_kept():
        out = Path(tmp) / "int8.onnx"
        quantize(str(pre), quantize_mode="int8", calibration_data={"clip": clips}, calibration_method=method,
                 calibration_eps=["cpu"], high_precision_dtype="fp32", output_path=str(out), log_level="ERROR",
                 nodes_to_exclude=list(exclude) or None)
        return onnx.load(str(out))


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over an array of clips, a few at a time."""

    def __init__(self, clips: np.ndarray, batch: int = 8):
        self.batches = iter([{"clip": clips[i : i + batch]} for i in range(0, len(clips), batch)])

    def get_next(self):
        return next(self.batches, None)


def ort_quantize(pre: Path, clips: np.ndarray, method: str = "minmax", exclude: tuple[str, ...] = (),
                 activations: str = "uint8") -> onnx.ModelProto:
    """ONNX Runtime's static QDQ quantisation: per-channel symmetric INT8 weights; activations
    "uint8" (asymmetric, INT32 biases) or "int8" (symmetric, zero point 0, float biases)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise PRPError(f"--calib-method must be one of {', '.join(METHODS)}, got {method!r}")
    _check_exclude(onnx.load(str(pre)), exclude)
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method]
    reader = _Reader(clips)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        out = Path(tmp) / "int8.onnx"
        # Not CalibMaxIntermediateOutputs (it would bound memory): in onnxruntime 1.32 it drops
        # each full set of batches instead of merging its ranges.
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                        calibrate_method=calibrate, nodes_to_exclude=list(exclude),
                        activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": activations == "int8",
                                       "QuantizeBias": activations != "int8"})
        return onnx.load(str(out))
