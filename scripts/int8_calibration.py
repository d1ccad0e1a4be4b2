"""How many INT8 calibration clips an export needs: quantise its model.onnx with 8..256 clips of
the training videos (3 draws each), plain and with the first and last layers kept in FP32, and
judge each on 128 test clips against FP32 (5th-percentile feature cosine, top-1 agreement).

    python scripts/int8_calibration.py RUN/export       # the run's dataset must be readable here
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from prp_deploy.export.int8 import first_and_last_layers, preprocessed, quantize
from prp_deploy.export.parity import compare
from prp_deploy.export.parity_clips import by_class_round_robin, clips_per_video, real_clips, run_index
from prp_deploy.export.torch_backend import load_model
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from prp_deploy.runtime.model_info import read_model_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("--clips", default="8,16,32,64,128,256")
    args = ap.parse_args()
    info = read_model_info(args.export)
    spec, fp32 = info.preprocess, args.export / "model.onnx"
    index = run_index(load_model(Path(info.raw["source"]["checkpoint"]), "finetune"), print)
    test, _ = real_clips(list(index.test), spec, 128, per_video=1)
    ref = OnnxRuntimeBackend(fp32).run(test)
    out = Path(tempfile.mkdtemp()) / "int8.onnx"
    print("layers kept | clips | 5th-pct cosine (spread) | top-1 agreement on clear clips (min)")
    with preprocessed(fp32) as pre:
        for name, keep in (("none", ()), ("first+last", first_and_last_layers(pre))):
            for n in (int(c) for c in args.clips.split(",")):
                p5, agree = [], []
                for seed in range(3):
                    videos = by_class_round_robin(list(index.train), seed)[0::2]
                    calib, _ = real_clips(videos, spec, n, per_video=clips_per_video(n, videos, 16))
                    quantize(pre, out, calib, "minmax", keep)
                    got = OnnxRuntimeBackend(out).run(test)
                    p5.append(compare(ref["features"], got["features"], "features", "int8", 0, 0, artifact="", backend="", inputs="").stats["p5_cosine"])
                    agree.append(compare(ref["logits"], got["logits"], "logits", "int8", 0, 0, artifact="", backend="", inputs="").stats["top1_agree_clear"])
                print(f"{name} | {n} | {np.mean(p5):.4f} ({max(p5) - min(p5):.4f}) | {100 * np.mean(agree):.1f} % ({100 * min(agree):.1f} %)", flush=True)

if __name__ == "__main__":
    main()
