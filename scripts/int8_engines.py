"""Every INT8 engine and setting on one export, side by side: what each really quantised, what
the held-back judge (the export's own, on videos the classifier was not fitted on) predicted,
what the test videos then showed, and its speed against FP32 in ONNX Runtime.

    python scripts/int8_engines.py RUN/export [--only nncf-0.002,modelopt-max] [--iters 20] [--json OUT.json]

Rows: ort-plain, ort-ends (first and last layers in FP32), ort-sym-plain, ort-sym-ends
(signed symmetric, TensorRT's form), nncf-plain, nncf-<max_drop>[-kl] (accuracy control;
-kl: steered by the KL alone, without the top-1 term), modelopt-max, modelopt-entropy.
The run's dataset must be readable here. Nothing is written into the export.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from prp_deploy.export.int8 import first_and_last_layers, preprocessed
from prp_deploy.export.int8 import _judge as judge_held_back  # the export's own judge, not a copy
from prp_deploy.export.int8_data import calibration
from prp_deploy.export.int8_engines import Steering, modelopt_quantize, nncf_quantize, ort_quantize, quantised_nodes
from prp_deploy.export.int8_judge import held_back_stats, paired_flips
from prp_deploy.export.parity_clips import run_index
from prp_deploy.export.torch_backend import load_model
from prp_deploy.data.clips import EvalClips
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from prp_deploy.runtime.model_info import read_model_info

ROWS = ("ort-plain", "ort-ends", "ort-sym-plain", "ort-sym-ends", "nncf-plain", "nncf-0.003", "nncf-0.002-kl", "nncf-0.001-kl",
        "modelopt-max", "modelopt-entropy")


def make(row: str, pre: Path, calib, steer: Steering):
    ends = first_and_last_layers(pre)
    kind, _, rest = row.partition("-")
    if kind == "ort":
        act = "int8" if rest.startswith("sym") else "uint8"
        return ort_quantize(pre, calib.clips, "minmax", ends if rest.endswith("ends") else (), act)
    if kind == "nncf":
        if rest == "plain":
            return nncf_quantize(pre, calib.clips)
        if rest == "ends":
            return nncf_quantize(pre, calib.clips, ends)
        if rest == "first":
            return nncf_quantize(pre, calib.clips, ends[:1])
        drop, _, metric = rest.partition("-")
        return nncf_quantize(pre, calib.clips, (), steer, float(drop), flip_weight=0.0 if metric == "kl" else 1.0)
    return modelopt_quantize(pre, calib.clips, rest)


def speed(paths: dict, clip_shape, iters: int) -> dict:
    """clips/s at batch 1 and 8, interleaved rounds (this machine is noisy): median latency."""
    sessions = {k: OnnxRuntimeBackend(p) for k, p in paths.items()}
    out = {}
    for b in (1, 8):
        x = np.random.default_rng(0).random((b, *clip_shape), dtype=np.float32)
        times = {k: [] for k in sessions}
        for s in sessions.values():
            s.run(x)
        for _ in range(iters):
            for k, s in sessions.items():
                t = time.perf_counter(); s.run(x); times[k].append(time.perf_counter() - t)
        out[b] = {k: b / float(np.median(v)) for k, v in times.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("--only", default=",".join(ROWS))
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    info = read_model_info(args.export)
    spec, fp32 = info.preprocess, args.export / "model.onnx"
    model = load_model(Path(info.raw["source"]["checkpoint"]), "finetune")
    index = run_index(model, lambda s: None)
    calib = calibration(index, model.state.get("config", {}), spec, 64, print)
    ref = OnnxRuntimeBackend(fp32)
    held = calib.held_back
    held.fp32 = {"steer": ref.run(held.steer), "judge": [ref.run(v)["logits"] for v in held.judge]}
    steer = Steering(held.steer, held.fp32["steer"]["logits"], "logits")
    ds = EvalClips(list(index.test), spec, 10)
    test = [ds[i] for i in range(len(ds))]
    test = [t for t in test if t is not None]
    test_clips, test_labels = [t["clips"] for t in test], np.array([t["label"] for t in test])
    test_ref = [ref.run(c)["logits"] for c in test_clips]
    tmp, rows, paths = Path(tempfile.mkdtemp()), [], {"fp32": fp32}
    print(f"{len(calib.clips)} calibration clips; held back {held.source}: {len(held.steer)} steering clips, {len(held.judge)} judging videos; "
          f"{len(test_clips)} test videos", flush=True)
    with preprocessed(fp32) as pre:
        for row in args.only.split(","):
            t = time.time()
            graph = make(row, pre, calib, steer)
            seconds = time.time() - t
            paths[row] = tmp / f"{row}.onnx"
            onnx.save_model(graph, str(paths[row]))
            h = judge_held_back(graph, calib, ("logits", "features"))
            got = [OnnxRuntimeBackend(paths[row]).run(c)["logits"] for c in test_clips]
            tt = held_back_stats(test_ref, got, test_labels)
            flips = paired_flips(np.array([r.mean(0).argmax() for r in test_ref]) == test_labels,
                                 np.array([g.mean(0).argmax() for g in got]) == test_labels, 1.0)
            rows.append({"row": row, "seconds": round(seconds, 1), "quantised": quantised_nodes(graph), "held_back": h["videos"],
                         "held_back_passed": h["passed"], "test": tt, "test_verdict": flips["sentence"]})
            q = rows[-1]["quantised"]
            print(f"{row}: {q['int8']}/{q['of']} layers INT8, {seconds:.0f} s | held-back: agree {h['videos']['clip_agreement']:.4f}, "
                  f"KL {h['videos']['mean_kl']:.2g}, drop {h['videos']['drop_points']:+.2f} (predicted {h['videos']['predicted_drop_points']:+.2f}), "
                  f"{'passes' if h['passed'] else 'fails'} | test: agree {tt['clip_agreement']:.4f}, {tt['lost']} lost {tt['gained']} gained "
                  f"of {tt['videos']} ({tt['drop_points']:+.2f} points)", flush=True)
    s = speed(paths, (3, spec.frames, spec.crop, spec.crop), args.iters)
    for r in rows:
        r["speed_vs_fp32"] = {b: round(s[b][r["row"]] / s[b]["fp32"], 2) for b in s}
        print(f"{r['row']}: × FP32 at batch 1 {r['speed_vs_fp32'][1]}, batch 8 {r['speed_vs_fp32'][8]}")
    if args.json:
        args.json.write_text(json.dumps({"export": str(args.export), "argv": sys.argv, "rows": rows, "fp32_clips_per_s": s}, indent=1))


if __name__ == "__main__":
    main()
