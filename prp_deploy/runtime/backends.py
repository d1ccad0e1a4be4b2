"""Inference backends behind one interface: float32 clips (N, 3, T, H, W) in, a dict of
`logits` (N, classes) and/or `features` (N, D) out, float32.

ONNX Runtime (CPU, CUDA) and TensorRT live here, torch-free; heavy imports happen inside
the constructors, so the package imports without them. The torch reference backend needs
the model code and lives in `prp_deploy.export.torch_backend`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from ..errors import PRPError
from .artifacts import Artifact, UnverifiedModel, choose, for_path, verdict


class Backend(Protocol):
    name: str
    outputs: tuple[str, ...]
    max_batch: int | None  # None: any

    def run(self, clips: np.ndarray) -> dict[str, np.ndarray]: ...


class OnnxRuntimeBackend:
    """An ONNX model in onnxruntime; `device="cuda"` needs onnxruntime-gpu, `"auto"` takes CUDA where it is here."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0):
        import onnxruntime as ort

        if device == "auto":
            device = "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise PRPError("onnxruntime has no CUDA provider here: pip install 'prp-deploy[gpu]' (onnxruntime-gpu)")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:
            raise PRPError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:160]})") from None
        self.name, self.path = f"onnxruntime-{device}", Path(path)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise PRPError(f"{path}: expected one input (clip), found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        batch = inputs[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) else None
        dims = inputs[0].shape[1:]
        self.clip_shape = tuple(dims) if all(isinstance(d, int) for d in dims) else None

    def run(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {self.input_name: np.ascontiguousarray(clips, dtype=np.float32)})
        return {name: np.asarray(v, dtype=np.float32) for name, v in zip(self.outputs, values)}


def _check(result, what: str):
    """cuda.bindings calls return (error, *values); a non-success error is a PRPError, so
    backend auto falls back to ONNX Runtime where TensorRT is installed but no GPU works."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise PRPError(f"CUDA error {int(err)} in {what} (no usable GPU here?)")
    return values[0] if len(values) == 1 else values


class TensorRTBackend:
    """A serialised TensorRT engine (`model.plan`), run with execute_async_v3.

    `probe_on_open`: backend auto runs one batch through it before choosing it, since a GPU
    that fails (a CUDA call, out of memory) would otherwise fail every batch.

    Device memory through cuda-python's `cuda.bindings.runtime` (no pycuda). Buffers are
    allocated for the engine's largest batch once and reused; each call copies the batch
    in, enqueues, copies the outputs out, and synchronises the stream.
    """

    probe_on_open = True

    def __init__(self, plan: str | Path, device: str = "cuda"):  # `device`: the table's call shape; an engine is on its GPU
        plan = Path(plan)
        try:
            import tensorrt as trt
            from cuda.bindings import runtime as cudart
        except ImportError as e:
            raise PRPError(f"TensorRT backend needs tensorrt and cuda-python: pip install 'prp-deploy[trt]' ({e.name} is missing)") from None
        self.trt, self.cudart = trt, cudart
        check_engine_compatibility(read_plan_facts(plan), trt.__version__, _compute_capability(cudart), plan)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        if runtime is None:
            raise PRPError(f"{plan}: TensorRT {trt.__version__} could not create a runtime (no usable GPU?)")
        self.engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise PRPError(f"{plan}: TensorRT {trt.__version__} could not deserialize it (built by another TensorRT version or GPU?); rebuild with `prp-deploy export --trt`")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise PRPError(f"{plan}: TensorRT could not create an execution context (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise PRPError(f"{plan}: expected one input tensor (clip), found {inputs}")
        self.input_name = inputs[0]
        self.outputs = tuple(n for n in names if n != self.input_name)
        for n in names:  # the runtime hands float32 in and reads float32 out
            if self.engine.get_tensor_dtype(n) != trt.float32:
                raise PRPError(f"{plan}: tensor {n!r} is {self.engine.get_tensor_dtype(n)}, not float32; re-export with `prp-deploy export --trt`")
        min_shape, _, max_shape = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_batch, self.max_batch = int(min_shape[0]), int(max_shape[0])
        self.clip_shape = tuple(int(s) for s in max_shape[1:])
        self.name, self.path = "tensorrt", plan
        self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor name → (device pointer, bytes), sized for max_batch
        for name in names:
            shape = list(self.engine.get_tensor_shape(name))
            shape[0] = self.max_batch
            nbytes = int(np.prod(shape)) * np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).itemsize
            self._buffers[name] = (_check(cudart.cudaMalloc(nbytes), "cudaMalloc"), nbytes)
            if not self.context.set_tensor_address(name, self._buffers[name][0]):  # the addresses never change: set once
                raise PRPError(f"{plan}: TensorRT refused the device address of tensor {name!r}")

    def run(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        trt, cudart = self.trt, self.cudart
        clips = np.ascontiguousarray(clips, dtype=np.float32)
        batch = clips.shape[0]  # the caller's clips; a short batch is padded below and cut back at the end
        if batch < 1 or batch > self.max_batch or clips.shape[1:] != self.clip_shape:
            raise PRPError(f"TensorRT engine takes 1 to {self.max_batch} clips of {self.clip_shape}, got {clips.shape}")
        if batch < self.min_batch:  # a short tail under the profile's minimum: pad with copies, drop their outputs
            clips = np.concatenate([clips, np.repeat(clips[-1:], self.min_batch - batch, axis=0)])
        if not self.context.set_input_shape(self.input_name, clips.shape):
            raise PRPError(f"TensorRT refused input shape {clips.shape} (profile {self.min_batch}..{self.max_batch} clips)")
        ptr, _ = self._buffers[self.input_name]
        _check(cudart.cudaMemcpyAsync(ptr, clips.ctypes.data, clips.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream), "copy in")
        if not self.context.execute_async_v3(self.stream):
            raise PRPError("TensorRT execute_async_v3 failed")
        out = {}
        for name in self.outputs:
            host = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, self._buffers[name][0], host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                          self.stream), "copy out")
            out[name] = host
        _check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return {name: v[:batch].astype(np.float32, copy=False) for name, v in out.items()}

    def __del__(self):
        cudart = getattr(self, "cudart", None)
        if cudart is None:
            return
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamSynchronize(self.stream)  # no copy may still target a buffer freed below
        for p, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(p)
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamDestroy(self.stream)


def read_plan_facts(plan: Path) -> dict:
    """The plan's sidecar (model.plan.json: TensorRT version, GPU, profile); {} when absent.
    A damaged one is a PRPError naming it, not a ValueError."""
    sidecar = Path(plan).with_name(Path(plan).name + ".json")
    if not sidecar.exists():
        return {}
    try:
        facts = json.loads(sidecar.read_text())
    except (OSError, ValueError) as e:
        raise PRPError(f"{sidecar}: unreadable ({e}); rebuild the engine with `prp-deploy export --trt`") from None
    if not isinstance(facts, dict):
        raise PRPError(f"{sidecar}: not a JSON object; rebuild the engine with `prp-deploy export --trt`")
    return facts


# The backend class of each engine the artefact table names: Class(path, device) → Backend.
ENGINE_BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "tensorrt": TensorRTBackend}


def _compute_capability(cudart) -> str:
    dev = _check(cudart.cudaGetDevice(), "cudaGetDevice")
    props = _check(cudart.cudaGetDeviceProperties(dev), "cudaGetDeviceProperties")
    return f"{props.major}.{props.minor}"


def check_engine_compatibility(facts: dict, trt_version: str, compute_capability: str, plan: Path) -> None:
    """A plan runs only on the TensorRT version and GPU architecture that built it: say which differs and what to do."""
    built_trt, built_cc = facts.get("tensorrt_version"), facts.get("compute_capability")
    if built_trt and built_trt != trt_version:
        raise PRPError(f"{plan}: built by TensorRT {built_trt}, this is TensorRT {trt_version}; rebuild it here with `prp-deploy export --trt`")
    if built_cc and built_cc != compute_capability:
        raise PRPError(f"{plan}: built for GPU compute capability {built_cc} ({facts.get('gpu', '?')}), this GPU is {compute_capability}; "
                       "rebuild it on this GPU with `prp-deploy export --trt`")


def check_backend_matches(backend, info) -> None:
    """The graph's clip shape and outputs must be what the metadata says, or preprocessing would be wrong."""
    shape = getattr(backend, "clip_shape", None)
    if shape is not None and tuple(shape) != tuple(info.input_shape):
        raise PRPError(f"model metadata (clip {list(info.input_shape)}) does not match the graph's input {list(shape)}; re-export the model")
    missing = [o for o in info.outputs if o not in backend.outputs]
    if missing:
        raise PRPError(f"model metadata promises outputs {missing} that the graph does not have ({list(backend.outputs)}); re-export the model")


def open_artifact(path: Path, artifact: Artifact, device: str = "auto", verify: bool = True, allow_unverified: bool = False,
                  say=lambda s: None, threads: int = 0) -> Backend:
    """The backend class of `artifact`'s engine on `path`. ONNX Runtime takes CUDA when its
    CUDA provider is here (device auto), else the CPU. `verify`: serve only a file parity
    passed (export itself opens new files before it judges them); `allow_unverified` opens
    one anyway, says why once, and marks the backend `verified = False`. `threads`: ONNX
    Runtime's intra-op threads (0: its default, every core), for a worker given a share of a machine."""
    why = verdict(Path(path)) if verify else None
    if why is not None and not allow_unverified:
        raise UnverifiedModel(why)
    if why is not None:
        say(f"warning: running an unverified model (--allow-unverified): {why.split('; ')[0]}")
    engine = ENGINE_BACKENDS.get(artifact.engine)
    if engine is None:
        raise PRPError(f"{path}: no backend runs engine {artifact.engine!r} (known: {', '.join(ENGINE_BACKENDS)})")
    backend = engine(path, device, threads) if threads and artifact.engine == "onnxruntime" else engine(path, device)
    backend.verified = why is None if verify else None
    backend.precision = artifact.precision
    counter = _engine_starts.get()
    if counter is not None:
        counter[0] += 1
    return backend


# Engines constructed by the run counting them in this thread (summary.json reports a run's
# count: one engine for all its sources); a context variable, so runs in other threads keep theirs.
_engine_starts: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("prp_engine_starts", default=None)


@contextlib.contextmanager
def counting_engine_starts() -> Iterator[list[int]]:
    """Count the engines opened in this thread inside the block: `with counting_engine_starts() as n: ...; n[0]`."""
    counter = [0]
    token = _engine_starts.set(counter)
    try:
        yield counter
    finally:
        _engine_starts.reset(token)


def open_backend(model: str | Path, backend: str = "auto", precision: str | None = None, allow_unverified: bool = False,
                 say=lambda s: None, threads: int = 0) -> Backend:
    """A backend for `model` (an export folder, or one model file) from the artefact table:
    backend auto tries its rows in order (the TensorRT engine, then ONNX Runtime) and passes
    over one that cannot run here or that parity did not pass (saying so); a named backend
    must run or say why. Only files parity passed are served unless `allow_unverified`."""
    model = Path(model)
    if not model.exists():
        raise PRPError(f"{model}: no such model")
    if backend == "onnxruntime-cpu":
        backend, device = "onnxruntime", "cpu"
    elif backend == "onnxruntime-cuda":
        backend, device = "onnxruntime", "cuda"
    else:
        device = "auto"
    if not model.is_dir():
        row = for_path(model)
        if backend not in ("auto", row.engine):  # one file is what it is: its precision is not chosen here
            raise PRPError(f"{model}: is a {row.engine} model, not one for backend {backend}")
        return open_artifact(model, row, device, allow_unverified=allow_unverified, say=say, threads=threads)
    rows = choose(model, backend, precision)
    if precision is None and backend in ("auto", "onnxruntime"):
        from .speed import with_int8_where_it_pays

        rows = with_int8_where_it_pays(model, rows, device)
    if backend != "auto":
        return open_artifact(model / rows[0].file, rows[0], device, allow_unverified=allow_unverified, say=say, threads=threads)
    refused: list[str] = []
    for row in rows:
        try:
            chosen = open_artifact(model / row.file, row, device, allow_unverified=allow_unverified, say=say, threads=threads)
            if getattr(chosen, "probe_on_open", False):  # one batch through it now: a GPU that fails fails here, not on every batch
                chosen.run(np.zeros((getattr(chosen, "min_batch", 1), *chosen.clip_shape), np.float32))
            return chosen
        except UnverifiedModel as e:  # parity did not pass it: the next row that it did
            refused.append(str(e))
            if row is not rows[-1]:
                say(f"passing over {row.file}: {str(e).split('; ')[0].split(': ', 1)[1]}")
        except PRPError:
            if row is rows[-1]:
                raise
            # e.g. no TensorRT here, an engine built for another GPU, a CUDA call that fails: the next row
    raise UnverifiedModel(refused[0] if len(refused) == 1 else f"{refused[-1]} (and no other artefact of {model} passed parity)")
