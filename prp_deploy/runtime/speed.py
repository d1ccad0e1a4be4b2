"""Whether an INT8 artefact pays here: its latency against FP32's, measured by `export` on the
machine it runs on and written beside parity's verdict; backend auto reads it.

INT8's gain depends on the CPU (VNNI's int8 dot products, or AVX2's slower emulation) and on
the model (a tiny model's batch-1 call is dominated by the per-op overhead that quantise and
dequantise nodes add), so it is measured, never assumed: docs/results.md. Torch-free.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .artifacts import ARTIFACTS, Artifact, verdict

BATCHES = (1, 8)
# INT8 pays when it is at least this much faster than FP32 at every batch measured: a smaller
# gain is within a shared machine's noise and not worth the accuracy INT8 may cost.
PAYS_AT = 1.10
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # what decides ONNX Runtime's int8 kernels on x86


def machine() -> dict:
    """What an INT8 speed measurement holds for: the CPU, the cores this process may use, the
    instruction sets INT8 kernels depend on, and ONNX Runtime's version."""
    import onnxruntime

    cpu, flags = None, []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu is None:
                cpu = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = [f for f in ISA_FLAGS if f in value.split()]
    except OSError:  # not Linux: the platform's own name
        pass
    cpu = cpu or platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "isa": flags, "onnxruntime": onnxruntime.__version__}


def _paired_latencies(first, second, clips: np.ndarray, pairs: int) -> tuple[list[float], list[float]]:
    """Each pair calls both backends back to back, in alternating order: a shared machine's
    slow spells (which last seconds here) fall on both alike, and neither always runs second."""
    out: tuple[list[float], list[float]] = ([], [])
    for i in range(pairs):
        for k in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            (first, second)[k].run(clips)
            out[k].append(time.perf_counter() - t0)
    return out


def compare_latency(fp32, int8, clip_shape, batches=BATCHES, budget_s: float = 4.0) -> dict:
    """FP32 and INT8 backends timed on the same random clips, call by call in alternation,
    about `budget_s` seconds in all (at least 8 calls each, however slow). Each batch's
    speedup is FP32's median latency over INT8's."""
    rng = np.random.default_rng(0)
    rows = []
    for b in batches:
        clips = rng.random((b, *clip_shape), dtype=np.float32)
        t0 = time.perf_counter()
        fp32.run(clips), int8.run(clips)  # warm-up: first-call allocation; also the cost of one call each
        pairs = max(8, int(budget_s / len(batches) / max(time.perf_counter() - t0, 1e-6)))
        lat = _paired_latencies(fp32, int8, clips, pairs)
        fp32_ms, int8_ms = (1e3 * float(np.median(v)) for v in lat)
        rows.append({"batch": b, "fp32_ms": fp32_ms, "int8_ms": int8_ms, "speedup": fp32_ms / int8_ms, "calls": pairs})
    return {"machine": machine(), "device": "cpu", "pays_at": PAYS_AT, "batches": rows,
            "pays": all(r["speedup"] >= PAYS_AT for r in rows)}


def speed_line(file: str, record: dict, passed: bool = True) -> str:
    """The one line export says about it: the speedups, and what backend auto will do."""
    at = ", ".join(f"{r['speedup']:.2f}x at batch {r['batch']}" for r in record["batches"])
    where = f"{record['machine']['cpu']}, {record['machine']['cores']} cores"
    if not record["pays"]:
        return (f"{file}: INT8 is not faster than FP32 here ({at}; it pays from {record['pays_at']:.2f}x; {where}): "
                "backend auto keeps FP32; --precision int8 runs it anyway")
    if not passed:
        return f"{file}: INT8 is faster than FP32 here ({at}; {where}), but parity failed it: not served"
    return f"{file}: INT8 is faster than FP32 here ({at}; {where}): backend auto serves it on this machine"


def pays_here(export_dir: Path, file: str) -> dict | None:
    """The export's speed record of `file` if it says INT8 pays and was measured on a machine
    like this one (same CPU, cores, instruction sets and ONNX Runtime); else None."""
    try:
        record = json.loads((Path(export_dir) / "parity.json").read_text()).get("speed", {}).get(file)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(record, dict) or not record.get("pays") or record.get("machine") != machine():
        return None
    return record


def with_int8_where_it_pays(export_dir: Path, rows: list[Artifact], device: str) -> list[Artifact]:
    """`rows` with each INT8 artefact that parity passed and that export measured faster than
    FP32 on a machine like this one (runtime/speed.py) put before its engine's first row. The
    measurement is of ONNX Runtime's CPU kernels: where it would run on CUDA, it says nothing."""
    if device == "cuda" or (device == "auto" and _cuda_provider()):
        return rows
    for a in ARTIFACTS.values():
        if a.auto_if_faster and (export_dir / a.file).exists() and pays_here(export_dir, a.file) and verdict(export_dir / a.file) is None:
            rows = [r for r in rows if r is not a]
            at = next((i for i, r in enumerate(rows) if r.engine == a.engine), len(rows))
            rows.insert(at, a)
    return rows


def _cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()
