"""FP16 ONNX → serialised TensorRT engine. Thin on purpose: no machine that builds this
project has TensorRT, so every call here follows the TensorRT Python API documentation
and is exercised by `scripts/gpu_check.sh` on a machine that has it.

A strongly typed network takes its precisions from the ONNX types, so the same code
builds FP16 engines on TensorRT 10.x (where weak typing is deprecated since 10.12) and
11.x (where BuilderFlag.FP16 is gone).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PRPError
from ..files import atomic_write


class TensorRTUnavailable(PRPError):
    """TensorRT or a GPU is missing: the ONNX artefacts are written, the engine is not."""


class Int8Declined(PRPError):
    """The INT8 engine's source graph failed the held-back judge: the engine is not built, by
    the rule rather than for want of anything, and the FP16 engine serves TensorRT instead."""


def tensorrt_or_reason():
    """(tensorrt module, cuda runtime module) or raise TensorRTUnavailable saying what to install."""
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable("--trt: tensorrt is not installed; pip install 'prp-deploy[trt]' (tensorrt-cu12 or -cu13 with cuda-bindings of the same CUDA major)") from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise TensorRTUnavailable("--trt: cuda-python is not installed; pip install 'prp-deploy[trt]' (cuda-bindings of your CUDA major)") from None
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise TensorRTUnavailable("--trt: no CUDA GPU is visible; build the engine on the machine that will run it")
    return trt, cudart


def _timing_cache(config, path: Path | None):
    """The timing cache this build uses and grows: ours from an earlier build, else a new one;
    None (a build without one) when TensorRT gives none. create_timing_cache returns None for
    bytes it cannot read, and set_timing_cache refuses a cache of another GPU or version."""
    stored = path.read_bytes() if path is not None and path.exists() else b""
    for data in ([stored, b""] if stored else [b""]):
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
    return None


def build_engine(onnx_path: Path, plan_path: Path, batch: tuple[int, int, int], clip_shape: tuple[int, int, int, int],
                 workspace_gib: float = 4.0, timing_cache: Path | None = None, precision: str = "fp16") -> dict:
    """Build `plan_path` from an FP16 ONNX graph, or an INT8 QDQ graph (explicit quantisation),
    with an optimisation profile over the batch size. The strongly typed network takes every
    precision from the graph's types and Q/DQ nodes, so no precision flag is set."""
    trt, cudart = tensorrt_or_reason()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise PRPError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    lo, opt, hi = batch
    profile.set_shape("clip", (lo, *clip_shape), (opt, *clip_shape), (hi, *clip_shape))
    if config.add_optimization_profile(profile) < 0:  # -1: TensorRT found the profile invalid
        raise PRPError(f"TensorRT refused the optimisation profile for batch {lo}:{opt}:{hi} of clips {list(clip_shape)}")
    cache = _timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise PRPError(f"{onnx_path}: TensorRT could not build an engine (see the TensorRT log above)")
    dev = cudart.cudaGetDevice()[1]
    props = cudart.cudaGetDeviceProperties(dev)[1]
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    facts = {"tensorrt_version": trt.__version__, "gpu": name, "compute_capability": f"{props.major}.{props.minor}",
             "batch": {"min": lo, "opt": opt, "max": hi}, "clip_shape": list(clip_shape), "workspace_gib": workspace_gib,
             "precision": f"{precision} (strongly typed, from {Path(onnx_path).name})", "onnx": Path(onnx_path).name}
    # The sidecar first, then the plan: a plan is never left beside the facts of another build.
    sidecar = plan_path.with_name(plan_path.name + ".json")
    plan_path.unlink(missing_ok=True)
    atomic_write(sidecar, json.dumps(facts, indent=2))
    atomic_write(plan_path, bytes(serialized))
    if timing_cache is not None and cache is not None:  # our own cache, grown by this build: faster rebuilds
        atomic_write(timing_cache, bytes(cache.serialize()))
    return facts



def build(a, x) -> dict:
    """The artefact table's TensorRT row, from its source row's (FP16 ONNX) file; raises
    TensorRTUnavailable where TensorRT or a GPU is missing."""
    from ..runtime.artifacts import ARTIFACTS

    return build_engine(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.batch, x.clip_shape, timing_cache=x.out / "timing.cache")


def build_int8(a, x) -> dict:
    """The artefact table's INT8 TensorRT row, from the INT8 QDQ ONNX graph (explicit quantisation).
    Raises Int8Declined, before asking for TensorRT, when that graph failed the held-back judge:
    an engine of a graph known to lose accuracy is not built, whatever the machine."""
    from ..runtime.artifacts import ARTIFACTS
    from .int8 import held_back_failure

    why = held_back_failure(x.built.get(a.source, {}))
    if why is not None and x.int8.trt_int8_anyway:
        x.say(f"export: building {a.file} anyway (--trt-int8-anyway): its source {ARTIFACTS[a.source].file} fails the held-back "
              f"judge ({why}); parity judges it on the test videos")
    elif why is not None:
        raise Int8Declined(f"its source {ARTIFACTS[a.source].file} fails the held-back judge ({why}); TensorRT serves "
                           f"{ARTIFACTS['tensorrt'].file} (FP16) instead (--trt-int8-anyway builds it for parity to judge), and "
                           f"{ARTIFACTS[a.source].file}'s checks are reported, not gating")
    return build_engine(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.batch, x.clip_shape, timing_cache=x.out / "timing.cache",
                        precision="int8")
