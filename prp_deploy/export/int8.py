"""INT8: the FP32 graph quantised by the engine that serves its target, each attempt judged
on held-back videos before parity judges the one kept on the test videos.

Targets (rows of the artefact table): `model_int8.onnx` for ONNX Runtime's CPU kernels (UINT8
activations), quantised by NNCF with accuracy control; `model_int8_symmetric.onnx`, the
signed symmetric Q/DQ graph TensorRT's explicit quantisation takes, quantised by ModelOpt
(int8_engines.py says why each). The judge (int8_judge.py) reads clip agreement, KL and the
true class's margins over videos the classifier was never fitted on (int8_data.py), so a
quantisation that erodes margins is refused before any test video flips. When no attempt
passes, the closest is kept for parity to judge, and the log says what to try.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from ..errors import PRPError
from ..files import atomic_write
from ..runtime.artifacts import ARTIFACTS
from .int8_data import Calibration
from .int8_engines import ENGINES, METHODS, Steering, modelopt_quantize, nncf_quantize, ort_quantize, quantised_nodes, weighted_nodes
from .int8_judge import clip_kl, held_back_passes, held_back_stats
from .onnx_export import attach_metadata
from .parity import INT8_RULES, judge_int8

__all__ = ["Int8Options", "Calibration", "METHODS", "ENGINES", "quantize", "quantize_checked", "preprocessed", "first_and_last_layers"]


@dataclass
class Int8Options:
    calib_clips: int = 64  # enough for stable ranges on the tiny preset: docs/results.md
    method: str = "minmax"  # the ort engine's calibration (modelopt: minmax is its "max")
    exclude: tuple[str, ...] = ()  # node names kept in FP32 (--int8-exclude)
    fallback: bool = True  # judged on held-back videos with remedies; False: plain and unchecked (a bench model)
    engine: str | None = None  # None: each target's own (nncf for ONNX Runtime, modelopt for TensorRT)
    trt_int8_anyway: bool = False  # TensorRT: build the INT8 engine even from a graph that failed the held-back judge


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
    nodes = weighted_nodes(onnx.load(str(pre)))
    return tuple(dict.fromkeys([nodes[0], nodes[-1]])) if nodes else ()


FORMATS = {"uint8": "QDQ, per-channel symmetric INT8 weights, UINT8 activations",
           "int8": "QDQ, symmetric INT8 weights and activations (zero point 0), float biases"}


def quantize(pre: Path, dst: Path, clips: np.ndarray, method: str, exclude: tuple[str, ...], meta: dict | None = None,
             activations: str = "uint8") -> None:
    """ONNX Runtime's QDQ graph of `pre` at `dst` (the ort engine; the scripts' comparisons)."""
    _save(ort_quantize(pre, clips, method, exclude, activations), dst, meta)


def _save(model: onnx.ModelProto, dst: Path, meta: dict | None) -> None:
    onnx.checker.check_model(model)
    if meta is not None:
        attach_metadata(model, meta)
    atomic_write(dst, lambda p: onnx.save_model(model, str(p)))


# Under this share of Conv/Gemm/MatMul layers in INT8 a graph is refused: accuracy control that
# returns most layers to float "passes" a model INT8 cannot serve, and runs at FP32's speed.
MIN_INT8_SHARE = 0.5

REMEDY_HINT = ("try another engine (--int8-engine nncf|modelopt|ort), more calibration clips (--calib-clips 256), or keep the "
               "layers that lose most in FP32 (--int8-exclude NODE,...; parity.json's build lists each attempt); FP16 needs no calibration")


def _ort_rungs(pre: Path, clips, opts: Int8Options, activations: str, checked: bool):
    ex = opts.exclude
    ladder = [("ort, plain", opts.method, ex)]
    if checked:
        ends = tuple(dict.fromkeys(ex + first_and_last_layers(pre)))
        ladder += [("ort, first and last layers in FP32", opts.method, ends)]
        ladder += [(f"ort, {m} calibration, first and last layers in FP32", m, ends) for m in ("percentile", "entropy") if m != opts.method]
    return [(what, "ort", lambda m=m, e=e: ort_quantize(pre, clips, m, e, activations)) for what, m, e in ladder]


def _nncf_rungs(pre: Path, clips, opts: Int8Options, steer: Steering | None):
    if steer is None:
        return [("nncf, plain", "nncf", lambda: nncf_quantize(pre, clips, opts.exclude))]
    # Steered by the KL first (smooth: it keeps the most layers in INT8), then with a changed
    # top-1 costing a whole point too (it returns more layers to float): docs/results.md.
    return [(f"nncf, accuracy control ({what}, max_drop {d:g})", "nncf",
             lambda d=d, w=w: nncf_quantize(pre, clips, opts.exclude, steer, d, flip_weight=w))
            for what, d, w in (("KL", 0.002, 0.0), ("KL and top-1", 0.003, 1.0))]


def _modelopt_rungs(pre: Path, clips, opts: Int8Options, steer: Steering | None):
    first = "max" if opts.method == "minmax" else opts.method
    rungs = [(f"modelopt, {first} calibration", "modelopt", lambda: modelopt_quantize(pre, clips, first, opts.exclude))]
    if steer is None:
        return rungs
    ranked: list[str] = []

    def excluding(k: int):
        if not ranked:  # each INT8 layer's cost, once: the KL on the steering clips with it alone in float
            ranked.extend(rank_layers(pre, clips, first, opts.exclude, steer))
        return modelopt_quantize(pre, clips, first, tuple(opts.exclude) + tuple(ranked[:k]))

    return rungs + [(f"modelopt, {first} calibration, the {k} costliest layer{'s' if k > 1 else ''} in FP32", "modelopt",
                     lambda k=k: excluding(k)) for k in (1, 2, 4)]


def rank_layers(pre: Path, clips, method: str, exclude: tuple[str, ...], steer: Steering) -> list[str]:
    """ModelOpt's INT8 layers, costliest first: the KL to FP32 on the steering clips of the
    graph with that one layer left in float, lowest first (what NNCF's accuracy control ranks by)."""
    from ..runtime.backends import OnnxRuntimeBackend

    layers = [n for n in weighted_nodes(onnx.load(str(pre))) if n not in exclude]
    kl = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in layers:
            graph = modelopt_quantize(pre, clips, method, tuple(exclude) + (name,))
            onnx.save_model(graph, str(Path(tmp) / "g.onnx"))
            got = OnnxRuntimeBackend(Path(tmp) / "g.onnx").run(steer.clips)[steer.output]
            kl[name] = float(clip_kl(steer.reference, got).mean()) if steer.output == "logits" else -float(
                ((steer.reference * got).sum(1) / np.maximum(np.linalg.norm(steer.reference, axis=1) * np.linalg.norm(got, axis=1), 1e-30)).mean())
    return sorted(kl, key=kl.get)


def _attempts(engine: str | None, pre: Path, calib: Calibration, opts: Int8Options, activations: str, steer: Steering | None, say):
    """(what, engine, make) in the order tried: each `make()` returns a QDQ graph. By default,
    ONNX Runtime's target tries ONNX Runtime's quantiser (the most layers kept in INT8 on our
    models), then NNCF's accuracy control (it returns layers to float until the held-back
    clips agree); TensorRT's tries ModelOpt, then ModelOpt with its costliest layers in float."""
    clips, checked = calib.clips, steer is not None
    if engine == "ort":
        return _ort_rungs(pre, clips, opts, activations, checked)
    if engine == "nncf":
        return _nncf_rungs(pre, clips, opts, steer)
    if engine == "modelopt" or activations == "int8":
        if engine is None and not _have("modelopt.onnx.quantization"):
            say("int8: ModelOpt is not installed (pip install 'prp-deploy[int8-trt]'); TensorRT's INT8 graph falls back to ONNX "
                "Runtime's symmetric quantiser, which loses more (docs/results.md)")
            return _ort_rungs(pre, clips, opts, activations, checked)
        return _modelopt_rungs(pre, clips, opts, steer)
    return _ort_rungs(pre, clips, opts, activations, checked) + (_nncf_rungs(pre, clips, opts, steer) if checked else [])


def _have(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _judge(graph: onnx.ModelProto, calib: Calibration, outputs: tuple[str, ...]) -> dict:
    """The held-back judge on one candidate graph: clip rules on the steering clips (features'
    cosines, agreement) and, for a recogniser, the video-level evidence on the judging videos."""
    from ..runtime.backends import OnnxRuntimeBackend

    held = calib.held_back
    with tempfile.TemporaryDirectory() as tmp:  # the runtime's own backend, as parity and `run` use
        onnx.save_model(graph, str(Path(tmp) / "candidate.onnx"))
        backend = OnnxRuntimeBackend(Path(tmp) / "candidate.onnx")
    got = backend.run(held.steer)
    verdict = judge_int8({o: held.fp32["steer"][o] for o in outputs}, {o: got[o] for o in outputs})
    if "logits" in outputs:
        videos = held_back_stats(held.fp32["judge"], [backend.run(v)["logits"] for v in held.judge], held.labels)
        verdict["videos"] = videos
        verdict["passed"] = verdict["passed"] and held_back_passes(videos, INT8_RULES["max_accuracy_drop"] / 2)
    return verdict


def _fp32_on_held_back(fp32: Path, calib: Calibration) -> None:
    from ..runtime.backends import OnnxRuntimeBackend

    if calib.held_back is not None and not calib.held_back.fp32:
        ref = OnnxRuntimeBackend(fp32)
        calib.held_back.fp32 = {"steer": ref.run(calib.held_back.steer),
                                "judge": [ref.run(v)["logits"] for v in calib.held_back.judge] if "logits" in ref.outputs else []}


def _said(what: str, verdict: dict) -> str:
    v = verdict.get("videos")
    if v is None:
        return ", ".join(f"{k} {x:.4g}" for k, x in verdict["stats"].items())
    return (f"clip agreement {v['clip_agreement']:.4f}, KL {v['mean_kl']:.2g}, {v['lost']} lost / {v['gained']} gained of "
            f"{v['videos']} videos ({v['drop_points']:+.2f} points; predicted from the margins {v['predicted_drop_points']:+.2f})")


def quantize_checked(fp32: Path, dst: Path, calib: Calibration, opts: Int8Options, outputs: tuple[str, ...], meta: dict, say,
                     activations: str = "uint8") -> dict:
    """Quantise by the target's engine; each attempt judged on the held-back videos, the first
    that passes kept, else the closest (least predicted drop). Returns the facts of the build."""
    engine = opts.engine
    if engine not in (None, *ENGINES):
        raise PRPError(f"--int8-engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "nncf" and activations == "int8":
        raise PRPError("--int8-engine nncf makes UINT8 activations, which TensorRT refuses; use modelopt or ort for --trt")
    held = calib.held_back
    base = {"clips": len(calib.clips), "videos": len(calib.videos), "activations": activations,
            "format": FORMATS[activations], "rules": INT8_RULES,
            **({"held_back": {"source": held.source, "judge_videos": len(held.judge), "steer_clips": len(held.steer),
                              "shared": held.shared}} if held else {})}
    with preprocessed(fp32) as pre:
        _fp32_on_held_back(fp32, calib)
        main = "logits" if "logits" in outputs else outputs[0]
        steer = Steering(held.steer, held.fp32["steer"][main], main) if held else None
        tried, graphs = [], []
        for what, used, make in _attempts(engine, pre, calib, opts, activations, steer, say):
            graph = make()
            facts = {"remedy": what, "engine": used, "method": opts.method, "excluded": list(opts.exclude), "quantised": quantised_nodes(graph)}
            if held is None:  # a bench model: plain, judged at parity only
                _save(graph, dst, {**meta, "int8_calibration": {**facts, **base}})
                return {**facts, **base, "attempts": [], "video_list": calib.videos}
            verdict = _judge(graph, calib, outputs)
            if facts["quantised"]["int8"] < MIN_INT8_SHARE * facts["quantised"]["of"]:
                verdict["passed"] = False  # an engine that returned most layers to float made an FP32 graph, not an INT8 one
                say(f"int8 {dst.name}: {what} left {facts['quantised']['int8']} of {facts['quantised']['of']} layers in INT8, under "
                    f"{MIN_INT8_SHARE:.0%}: refused as not INT8")
            tried.append({**facts, "passed": verdict["passed"], "stats": verdict["stats"], "thresholds": verdict["thresholds"],
                          **({"held_back_videos": verdict["videos"]} if "videos" in verdict else {})})
            graphs.append(graph)
            say(f"int8 {dst.name}: {what}, {facts['quantised']['int8']} of {facts['quantised']['of']} layers in INT8: "
                f"{'passes' if verdict['passed'] else 'fails'} on held-back videos ({_said(what, verdict)})")
            if verdict["passed"]:
                break
        keep = len(graphs) - 1
        if not tried[keep]["passed"]:
            # A predicted gain is noise, not merit: among attempts that lose nothing, the clip rules decide.
            keep = min(range(len(tried)), key=lambda i: (tried[i]["quantised"]["int8"] < MIN_INT8_SHARE * tried[i]["quantised"]["of"],
                                                         max(0.0, tried[i].get("held_back_videos", {}).get("predicted_drop_points", 0.0)),
                                                         -tried[i]["stats"].get("features_p5_cosine", 0.0)))
            say(f"int8 {dst.name}: no attempt passes on the held-back videos; keeping the closest ({tried[keep]['remedy']}) for "
                f"parity to judge; {REMEDY_HINT}")
    kept = {k: tried[keep][k] for k in ("remedy", "engine", "method", "excluded", "quantised")}
    _save(graphs[keep], dst, {**meta, "int8_calibration": {**kept, **base}})
    return {**kept, **base, "passed_held_back": tried[keep]["passed"], "attempts": tried, "video_list": calib.videos}


def held_back_failure(facts: dict) -> str | None:
    """Which held-back rules the graph a build kept failed, with its numbers; None when it
    passed or was never judged (a bench model)."""
    if facts.get("passed_held_back", True):
        return None
    kept = next((t for t in reversed(facts.get("attempts", [])) if t["remedy"] == facts.get("remedy")), {})
    stats, limits = kept.get("stats", {}), kept.get("thresholds", {})
    failed = [f"{k.replace('_', ' ')} {v:.4f} < {limits[rule]:.4f}" for k, v in stats.items()
              for rule in limits if k.endswith(rule) and v < limits[rule]]
    v = kept.get("held_back_videos")
    if v is not None:
        budget = INT8_RULES["max_accuracy_drop"] / 2
        if max(v["drop_points"], v["predicted_drop_points"]) > budget:
            failed.append(f"{v['lost']} lost / {v['gained']} gained of {v['videos']} videos, {v['drop_points']:+.2f} points "
                          f"(predicted {v['predicted_drop_points']:+.2f}) > {budget:g}")
    if kept.get("quantised", {}).get("int8", 1) < MIN_INT8_SHARE * kept.get("quantised", {}).get("of", 0):
        failed.append(f"only {kept['quantised']['int8']} of {kept['quantised']['of']} layers in INT8")
    return f"{facts.get('remedy')}, the closest of {len(facts.get('attempts', []))} attempts: {'; '.join(failed) or 'failed'}"


def build_int8(a, x) -> dict:
    """The artefact table's INT8 ONNX row, from its source (FP32 ONNX) and the calibration clips."""
    if x.calibration is None:
        raise PRPError("INT8 needs calibration clips (export --int8 reads them from the run's training videos)")
    return quantize_checked(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.calibration, x.int8, x.model.outputs, x.meta, x.say)


def build_int8_symmetric(a, x) -> dict:
    """The table's TensorRT INT8 source: signed symmetric activations (zero point 0) and float
    biases, the Q/DQ form TensorRT's explicit quantisation builds; its own attempts."""
    if x.calibration is None:
        raise PRPError("INT8 needs calibration clips (export --int8 reads them from the run's training videos)")
    opts = x.int8 if x.int8.engine != "nncf" else Int8Options(x.int8.calib_clips, x.int8.method, x.int8.exclude, x.int8.fallback,
                                                               trt_int8_anyway=x.int8.trt_int8_anyway)
    return quantize_checked(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.calibration, opts, x.model.outputs, x.meta, x.say,
                            activations="int8")
