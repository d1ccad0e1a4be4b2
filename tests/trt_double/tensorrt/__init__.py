"""Test double of the `tensorrt` Python API (see tests/trt_double/README.md): not TensorRT.

The surface prp-deploy uses: Logger, Runtime, Builder and its network flags, OnnxParser,
builder config (workspace, optimisation profiles, timing cache), engine (tensor names,
modes, shapes, dtypes, profile shapes) and execution context (input shapes, tensor
addresses, execute_async_v3). A plan is a small header plus the ONNX graph it was built
from; executing it runs that graph in ONNX Runtime on the bytes at the bound addresses.
"""

from __future__ import annotations

import enum
import json
import os

import numpy as np

__version__ = os.environ.get("TRT_DOUBLE_VERSION", "11.1.0")
PLAN_MAGIC = b"PRP-TRT-DOUBLE-PLAN\n"
CACHE_MAGIC = b"PRP-TRT-DOUBLE-CACHE\n"


def _failing(name: str) -> bool:
    return name in {n.strip() for n in os.environ.get("TRT_DOUBLE_FAIL", "").split(",") if n.strip()}


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3


float32, float16, int8, int32 = DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32
_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32}
_FROM_ONNX = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32}  # onnx TensorProto elem types


def nptype(dtype: DataType):
    return _NP[DataType(dtype)]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = WARNING):
        self.min_severity = min_severity
        self.messages: list[str] = []

    def log(self, severity: int, msg: str) -> None:
        self.messages.append(msg)


class _ParserError:
    def __init__(self, desc: str, node: str = ""):
        self._desc, self._node = desc, node

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return f"In node {self._node}: {self._desc}" if self._node else self._desc


class INetworkDefinition:
    def __init__(self, flags: int):
        self.flags = flags
        self.onnx_bytes: bytes | None = None
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)


class OnnxParser:
    """Parses the graph into the network, refusing what TensorRT refuses in the places this
    project could get wrong: asymmetric or unsigned Q/DQ (TensorRT's explicit quantisation is
    signed INT8 with zero point 0)."""

    def __init__(self, network: INetworkDefinition, logger: Logger):
        self.network, self.logger = network, logger
        self._errors: list[_ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, i: int) -> _ParserError:
        return self._errors[i]

    def parse(self, model: bytes) -> bool:
        import onnx
        from onnx import numpy_helper

        self._errors = []
        try:
            m = onnx.load_from_string(bytes(model))
        except Exception as e:  # noqa: BLE001 - a parser reports, it does not raise
            self._errors.append(_ParserError(f"could not read the ONNX model: {e}"))
            return False
        inits = {i.name: i for i in m.graph.initializer}
        for node in m.graph.node:
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            if len(node.input) < 3 or not node.input[2]:
                continue  # no zero point: 0, INT8
            zp = inits.get(node.input[2])
            if zp is None:
                self._errors.append(_ParserError("zero point must be a constant initializer", node.name))
                continue
            if zp.data_type != onnx.TensorProto.INT8:
                self._errors.append(_ParserError(f"only signed INT8 quantization is supported; zero point {zp.name} is "
                                                 f"{onnx.TensorProto.DataType.Name(zp.data_type)}", node.name))
            elif np.any(numpy_helper.to_array(zp) != 0):
                self._errors.append(_ParserError("only symmetric quantization is supported: the zero point must be all zeros", node.name))
        if self._errors:
            return False
        init_names = set(inits)
        shape = lambda vi: [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]  # noqa: E731
        self.network.inputs = [{"name": vi.name, "shape": shape(vi), "dtype": int(_FROM_ONNX[vi.type.tensor_type.elem_type])}
                               for vi in m.graph.input if vi.name not in init_names]
        self.network.outputs = [{"name": vi.name, "shape": shape(vi), "dtype": int(_FROM_ONNX[vi.type.tensor_type.elem_type])}
                                for vi in m.graph.output]
        self.network.onnx_bytes = bytes(model)
        return True


class IOptimizationProfile:
    def __init__(self):
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002 - TensorRT's parameter names
        self.shapes[input] = (tuple(min), tuple(opt), tuple(max))


class ITimingCache:
    def __init__(self, version: str):
        self.version = version

    def serialize(self) -> bytes:
        return CACHE_MAGIC + self.version.encode()


class IBuilderConfig:
    def __init__(self):
        self.pools: dict = {}
        self.profiles: list[IOptimizationProfile] = []
        self.timing_cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pools[pool] = size

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        """The profile's index, or -1 when it is not valid (no shapes, or not min <= opt <= max)."""
        if _failing("add_optimization_profile") or not profile.shapes:
            return -1
        for lo, opt, hi in profile.shapes.values():
            if len(lo) != len(hi) or any(not (a <= b <= c) for a, b, c in zip(lo, opt, hi)) or min(lo) < 1:
                return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized: bytes):
        if _failing("create_timing_cache"):
            return None
        data = bytes(serialized)
        if data and not data.startswith(CACHE_MAGIC):
            return None
        return ITimingCache(data[len(CACHE_MAGIC):].decode() if data else __version__)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if cache is None or (cache.version != __version__ and not ignore_mismatch):
            return False
        self.timing_cache = cache
        return True


class Builder:
    def __init__(self, logger: Logger):
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        """The plan (bytes), or None as TensorRT returns on failure (logged)."""
        if _failing("build_serialized_network") or network.onnx_bytes is None:
            self.logger.log(Logger.ERROR, "build failed")
            return None
        dynamic = [t for t in network.inputs if -1 in t["shape"]]
        if dynamic and not config.profiles:
            self.logger.log(Logger.ERROR, "a network with dynamic shapes needs an optimization profile")
            return None
        profiles = [{name: [list(s) for s in shapes] for name, shapes in p.shapes.items()} for p in config.profiles]
        if any(t["name"] not in p for t in dynamic for p in profiles):
            self.logger.log(Logger.ERROR, "the optimization profile does not name every dynamic input")
            return None
        header = {"version": __version__, "inputs": network.inputs, "outputs": network.outputs, "profiles": profiles,
                  "strongly_typed": bool(network.flags & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)))}
        return PLAN_MAGIC + json.dumps(header).encode() + b"\n" + network.onnx_bytes


class Runtime:
    def __init__(self, logger: Logger):
        self.logger = logger

    def deserialize_cuda_engine(self, plan: bytes):
        data = bytes(plan)
        if _failing("deserialize_cuda_engine") or not data.startswith(PLAN_MAGIC):
            self.logger.log(Logger.ERROR, "not a serialized engine")
            return None
        header, _, onnx_bytes = data[len(PLAN_MAGIC):].partition(b"\n")
        try:
            meta = json.loads(header)
        except ValueError:
            return None
        if meta["version"] != __version__:  # TensorRT refuses a plan of another version
            self.logger.log(Logger.ERROR, f"plan built by TensorRT {meta['version']}, this is {__version__}")
            return None
        return ICudaEngine(meta, onnx_bytes)


class ICudaEngine:
    def __init__(self, meta: dict, onnx_bytes: bytes):
        self.meta, self.onnx_bytes = meta, onnx_bytes
        self._tensors = {t["name"]: (TensorIOMode.INPUT, t) for t in meta["inputs"]}
        self._tensors.update({t["name"]: (TensorIOMode.OUTPUT, t) for t in meta["outputs"]})
        self._names = list(self._tensors)

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.meta["profiles"])

    def get_tensor_name(self, i: int) -> str:
        return self._names[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._tensors[name][0] if name in self._tensors else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType(self._tensors[name][1]["dtype"])

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(self._tensors[name][1]["shape"])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple]:
        return [tuple(s) for s in self.meta["profiles"][profile_index][name]]

    def create_execution_context(self):
        if _failing("create_execution_context"):
            return None
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        import onnxruntime as ort

        self.engine = engine
        self.session = ort.InferenceSession(engine.onnx_bytes, providers=["CPUExecutionProvider"])
        self.input_shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.output_shapes: dict[str, tuple] = {}

    def set_input_shape(self, name: str, shape) -> bool:
        if self.engine.get_tensor_mode(name) != TensorIOMode.INPUT:
            return False
        lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
        shape = tuple(int(s) for s in shape)
        if len(shape) != len(lo) or any(not (a <= s <= b) for a, s, b in zip(lo, shape, hi)):
            return False  # outside the optimisation profile: TensorRT refuses it
        self.input_shapes[name] = shape
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine._tensors or _failing("set_tensor_address"):
            return False
        self.addresses[name] = int(address)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self.input_shapes:
            return self.input_shapes[name]
        if name in self.output_shapes:
            return self.output_shapes[name]
        shape = list(self.engine.get_tensor_shape(name))
        batch = next(iter(self.input_shapes.values()), (-1,))[0]
        return tuple(batch if s == -1 else s for s in shape)

    def execute_async_v3(self, stream_handle: int) -> bool:
        from cuda.bindings import runtime as cudart

        if _failing("execute_async_v3") or stream_handle not in cudart._streams:
            return False
        inputs = {}
        for t in self.engine.meta["inputs"]:
            name = t["name"]
            if name not in self.input_shapes or name not in self.addresses:
                return False  # TensorRT: every input needs its shape and address before enqueue
            shape, dtype = self.input_shapes[name], nptype(t["dtype"])
            view = cudart.device_view(self.addresses[name], int(np.prod(shape)) * np.dtype(dtype).itemsize)
            if view is None:
                return False
            inputs[name] = view.view(dtype).reshape(shape).copy()
        results = self.session.run([t["name"] for t in self.engine.meta["outputs"]], inputs)
        for t, value in zip(self.engine.meta["outputs"], results):
            value = np.ascontiguousarray(value, dtype=nptype(t["dtype"]))
            if t["name"] not in self.addresses:
                return False
            view = cudart.device_view(self.addresses[t["name"]], value.nbytes)
            if view is None:
                return False  # the output buffer is too small for this batch
            view[:] = value.view(np.uint8).reshape(-1)
            self.output_shapes[t["name"]] = value.shape
        return True
