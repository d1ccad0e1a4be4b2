"""UINT8 (asymmetric, ONNX Runtime's default) against signed symmetric INT8 activations (what
TensorRT's explicit quantisation takes), on ONNX Runtime's CPU kernels: speed side by side in
interleaved rounds, and video-level top-1 against FP32 on the test videos.

    python scripts/int8_activations.py RUN/export         # an export of a trained run (accuracy + speed)
    python scripts/int8_activations.py --backbone r21d    # a random-init paper-size model (speed only)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from prp_deploy.export.int8 import first_and_last_layers, preprocessed, quantize
from prp_deploy.export.parity_clips import by_class_round_robin, clips_per_video, real_clips, run_index, video_predictions
from prp_deploy.export.torch_backend import load_model
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from prp_deploy.runtime.model_info import read_model_info


def speed(backends: dict, shape, batches=(1, 8), rounds: int = 3, iters: int = 10) -> dict:
    """clips/s of each backend at each batch: median latency over interleaved rounds."""
    x = {b: np.random.default_rng(0).random((b, *shape), dtype=np.float32) for b in batches}
    times = {(n, b): [] for n in backends for b in batches}
    for name, backend in backends.items():  # warm-up
        for b in batches:
            backend.run(x[b])
    for _ in range(rounds):
        for b in batches:
            for name, backend in backends.items():
                for _ in range(iters):
                    t0 = time.perf_counter()
                    backend.run(x[b])
                    times[(name, b)].append(time.perf_counter() - t0)
    return {key: key[1] / float(np.median(v)) for key, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path, nargs="?")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--calib-clips", type=int, default=64)
    args = ap.parse_args()
    if args.backbone:
        from prp_deploy.export.random_model import export_random

        args.export = export_random(args.backbone, 10, 1.0, 16, 112, out=Path(tempfile.mkdtemp()), int8=False)
    info = read_model_info(args.export)
    spec, fp32 = info.preprocess, args.export / "model.onnx"
    index = run_index(load_model(Path(info.raw["source"]["checkpoint"]), "finetune"), print)
    videos = by_class_round_robin(list(index.train))[0::2]
    calib, _ = real_clips(videos, spec, args.calib_clips, per_video=clips_per_video(args.calib_clips, videos, 16))
    out = Path(tempfile.mkdtemp())
    backends = {"fp32": OnnxRuntimeBackend(fp32)}
    with preprocessed(fp32) as pre:
        ends = first_and_last_layers(pre)
        for act in ("uint8", "int8"):
            for name, keep in (("plain", ()), ("first+last FP32", ends)):
                path = out / f"{act}-{len(keep)}.onnx"
                quantize(pre, path, calib, "minmax", keep, activations=act)
                backends[f"{act} {name}"] = OnnxRuntimeBackend(path)
    rates = speed(backends, tuple(info.input_shape))
    print("graph | clips/s batch 1 (x FP32) | clips/s batch 8 (x FP32)")
    for name in backends:
        print(f"{name} | {rates[(name, 1)]:.1f} ({rates[(name, 1)] / rates[('fp32', 1)]:.2f}) | "
              f"{rates[(name, 8)]:.1f} ({rates[(name, 8)] / rates[('fp32', 8)]:.2f})", flush=True)
    if args.backbone:
        return
    p = video_predictions(backends, list(index.test), spec)
    print(f"video-level top-1 on {len(p['labels'])} test videos (drop against FP32, videos flipped)")
    for name in backends:
        acc = 100 * float((p[name] == p["labels"]).mean())
        print(f"{name} | {acc:.2f} % | {100 * float((p['fp32'] == p['labels']).mean()) - acc:+.2f} | {int((p[name] != p['fp32']).sum())}")


if __name__ == "__main__":
    main()
