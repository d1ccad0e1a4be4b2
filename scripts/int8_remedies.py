"""What each INT8 remedy does to an export's model, on held-back *training* videos (where
export chooses) and on the *test* videos (where parity judges): video-level top-1 against
FP32 (10 clips a video), the videos whose prediction flipped, and the clip-level statistics.
It shows whether the choice made on training videos carries over to the test videos.

    python scripts/int8_remedies.py RUN/export [--calib-clips 64]   # the run's dataset must be readable here
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from prp_deploy.export.int8 import first_and_last_layers, preprocessed, quantize
from prp_deploy.export.parity_clips import by_class_round_robin, clips_per_video, real_clips, run_index, video_predictions
from prp_deploy.export.torch_backend import load_model
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from prp_deploy.runtime.model_info import read_model_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("--calib-clips", type=int, default=64)
    args = ap.parse_args()
    info = read_model_info(args.export)
    spec, fp32 = info.preprocess, args.export / "model.onnx"
    index = run_index(load_model(Path(info.raw["source"]["checkpoint"]), "finetune"), print)
    videos = by_class_round_robin(list(index.train))
    calib_videos, held = videos[0::2], videos[1::2]  # as export splits them
    calib, _ = real_clips(calib_videos, spec, args.calib_clips, per_video=clips_per_video(args.calib_clips, calib_videos, 16))
    fp32_backend = OnnxRuntimeBackend(fp32)
    out = Path(tempfile.mkdtemp()) / "int8.onnx"
    print(f"{len(held)} held-back training videos, {len(index.test)} test videos, {len(calib)} calibration clips")
    print("remedy | held-back: FP32 / INT8 top-1, drop, flips | test: FP32 / INT8 top-1, drop, flips")
    with preprocessed(fp32) as pre:
        ends = first_and_last_layers(pre)
        for name, method, keep in (("plain", "minmax", ()), ("first+last FP32", "minmax", ends),
                                   ("percentile, first+last", "percentile", ends), ("entropy, first+last", "entropy", ends)):
            quantize(pre, out, calib, method, keep)
            int8 = OnnxRuntimeBackend(out)
            cells = []
            for videos_judged in (held, list(index.test)):
                p = video_predictions({"fp32": fp32_backend, "int8": int8}, videos_judged, spec)
                a32, a8 = 100 * (p["fp32"] == p["labels"]).mean(), 100 * (p["int8"] == p["labels"]).mean()
                cells.append(f"{a32:.2f} / {a8:.2f}, {a32 - a8:+.2f}, {int((p['fp32'] != p['int8']).sum())} of {len(p['labels'])}")
            print(f"{name} | {cells[0]} | {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
