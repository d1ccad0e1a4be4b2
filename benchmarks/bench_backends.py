"""Inference throughput of every backend that runs here, on one export folder, side by side.

    python benchmarks/bench_backends.py RUN/export [--batch 1 8] [--iters 20]

Backends: torch (the reference, from the run's checkpoint), ONNX Runtime CPU and CUDA,
ONNX Runtime on the FP16 graph, TensorRT (model.plan). Each gets the same random clips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def time_backend(backend, clips: np.ndarray, iters: int) -> dict:
    backend.run(clips)  # warm-up: allocations, kernel selection
    lat = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.run(clips)
        lat.append(time.perf_counter() - t0)
    lat = np.array(lat)
    return {"clips_per_s": len(clips) / lat.mean(), "p50_ms": 1e3 * float(np.percentile(lat, 50)), "p95_ms": 1e3 * float(np.percentile(lat, 95))}


def backends(export_dir: Path):
    from prp_deploy.errors import PRPError
    from prp_deploy.runtime.backends import OnnxRuntimeBackend, TensorRTBackend

    meta = json.loads((export_dir / "model.json").read_text())
    yield "onnxruntime-cpu fp32", lambda: OnnxRuntimeBackend(export_dir / "model.onnx")
    if (export_dir / "model_fp16.onnx").exists():
        yield "onnxruntime-cpu fp16", lambda: OnnxRuntimeBackend(export_dir / "model_fp16.onnx")
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        yield "onnxruntime-cuda fp32", lambda: OnnxRuntimeBackend(export_dir / "model.onnx", "cuda")
    if (export_dir / "model.plan").exists():
        yield "tensorrt fp16", lambda: TensorRTBackend(export_dir / "model.plan")
    ckpt = Path(meta["source"]["checkpoint"])
    if ckpt.exists():
        from prp_deploy.export.torch_backend import TorchBackend, load_model

        stage = "finetune" if meta["kind"] == "recognizer" else "pretrain"
        yield "torch-cpu fp32 (eager)", lambda: TorchBackend(load_model(ckpt, stage), "cpu")
        import torch

        if torch.cuda.is_available():
            yield "torch-cuda fp32 (eager)", lambda: TorchBackend(load_model(ckpt, stage), "cuda")
    del PRPError


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export_dir", type=Path)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args(argv)
    meta = json.loads((args.export_dir / "model.json").read_text())
    shape = meta["input"]["shape"][1:]
    print(f"{args.export_dir}: {meta['backbone']['backbone']} {meta['kind']}, clip {shape}")
    print(f"{'backend':26s} {'batch':>5s} {'clips/s':>9s} {'p50 ms':>8s} {'p95 ms':>8s}")
    rows = []
    for name, make in backends(args.export_dir):
        try:
            backend = make()
        except Exception as e:  # a backend that cannot start here is reported, not fatal
            print(f"{name:26s} unavailable: {str(e).splitlines()[0][:90]}")
            continue
        for b in args.batch:
            if getattr(backend, "max_batch", None) and b > backend.max_batch:
                continue
            clips = np.random.default_rng(0).random((b, *shape), dtype=np.float32)
            r = time_backend(backend, clips, args.iters)
            rows.append((name, b, r))
            print(f"{name:26s} {b:5d} {r['clips_per_s']:9.1f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f}")
    return rows


if __name__ == "__main__":
    main()
