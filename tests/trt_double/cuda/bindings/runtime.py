"""Test double of `cuda.bindings.runtime` (see tests/trt_double/README.md): every call returns
`(cudaError_t, *values)` as the real bindings do; device memory is host memory."""

from __future__ import annotations

import ctypes
import enum
import os
from types import SimpleNamespace

import numpy as np


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorNoDevice = 100
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


# Allocations: base address → numpy buffer (kept alive here). Streams: handles handed out.
_allocations: dict[int, np.ndarray] = {}
_streams: set[int] = set()
_next_stream = [1]
calls: list[str] = []  # every call made, in order (tests read it)


def _failing(name: str) -> bool:
    calls.append(name)
    return name in {n.strip() for n in os.environ.get("TRT_DOUBLE_FAIL", "").split(",") if n.strip()}


def _gpus() -> int:
    return int(os.environ.get("TRT_DOUBLE_GPUS", "1"))


def cudaGetDeviceCount():
    if _failing("cudaGetDeviceCount") or _gpus() == 0:
        return (cudaError_t.cudaErrorNoDevice, 0)
    return (cudaError_t.cudaSuccess, _gpus())


def cudaGetDevice():
    if _failing("cudaGetDevice") or _gpus() == 0:
        return (cudaError_t.cudaErrorNoDevice, 0)
    return (cudaError_t.cudaSuccess, 0)


def cudaGetDeviceProperties(device: int):
    if _failing("cudaGetDeviceProperties") or device >= _gpus():
        return (cudaError_t.cudaErrorInvalidValue, None)
    major, minor = os.environ.get("TRT_DOUBLE_CC", "9.0").split(".")
    return (cudaError_t.cudaSuccess, SimpleNamespace(name=b"Test double GPU (not a GPU)\x00\x00", major=int(major), minor=int(minor)))


def cudaStreamCreate():
    if _failing("cudaStreamCreate"):
        return (cudaError_t.cudaErrorMemoryAllocation, None)
    handle = _next_stream[0]
    _next_stream[0] += 1
    _streams.add(handle)
    return (cudaError_t.cudaSuccess, handle)


def cudaStreamSynchronize(stream):
    if _failing("cudaStreamSynchronize") or stream not in _streams:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    return (cudaError_t.cudaSuccess,)


def cudaStreamDestroy(stream):
    calls.append("cudaStreamDestroy")
    if stream not in _streams:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    _streams.discard(stream)
    return (cudaError_t.cudaSuccess,)


def cudaMalloc(nbytes: int):
    if _failing("cudaMalloc") or nbytes <= 0:
        return (cudaError_t.cudaErrorMemoryAllocation, 0)
    buf = np.zeros(int(nbytes), np.uint8)
    _allocations[buf.ctypes.data] = buf
    return (cudaError_t.cudaSuccess, buf.ctypes.data)


def cudaFree(ptr: int):
    calls.append("cudaFree")
    if _allocations.pop(int(ptr), None) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    return (cudaError_t.cudaSuccess,)


def device_view(ptr: int, nbytes: int) -> np.ndarray | None:
    """The bytes [ptr, ptr+nbytes) of one allocation, or None if they are not all inside one."""
    for base, buf in _allocations.items():
        if base <= ptr and ptr + nbytes <= base + buf.nbytes:
            return buf[ptr - base : ptr - base + nbytes]
    return None


def cudaMemcpyAsync(dst: int, src: int, count: int, kind, stream):
    if _failing("cudaMemcpyAsync") or stream not in _streams:
        return (cudaError_t.cudaErrorInvalidValue,)
    if kind == cudaMemcpyKind.cudaMemcpyHostToDevice and device_view(int(dst), count) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    if kind == cudaMemcpyKind.cudaMemcpyDeviceToHost and device_view(int(src), count) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(int(dst), int(src), int(count))
    return (cudaError_t.cudaSuccess,)
