"""An export of a random-init model of a given shape, for `prp-deploy bench --backbone ...`:
the speed of a network does not depend on its weights, so anyone can see what a CPU or GPU
gives before training anything."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..data.preprocess import Preprocess
from ..models import ActionRecognizer, EncoderConfig, build_encoder, check_input_shape
from ..rundir import save_checkpoint, versions
from .int8 import Int8Options
from .pipeline import ExportOptions, export

CLASSES = 101  # UCF101's head: the classifier's cost is negligible either way
BENCH_CALIB_CLIPS = 2


def export_random(backbone: str, depth: int, width: float, frames: int, crop: int, out: Path | None = None, int8: bool = True,
                  trt: bool = False, say=lambda s: None) -> Path:
    """Export FP32, FP16 and (calibrated on the built-in synthetic videos) INT8 artefacts of a
    random-init recogniser; returns the export folder."""
    check_input_shape(frames, crop, backbone)
    cfg = EncoderConfig(backbone, depth, width).check()
    torch.manual_seed(0)
    model = ActionRecognizer(build_encoder(cfg), CLASSES).eval()
    spec = Preprocess(short_side=max(crop, round(crop * 128 / 112)), crop=crop, frames=frames)
    root = Path(out or tempfile.mkdtemp(prefix="prp-bench-"))
    ckpt = root / "random.pt"
    save_checkpoint({"encoder": cfg.to_dict(), "model": model.state_dict(), "stage": "finetune", "classes": [f"class{i}" for i in range(CLASSES)],
                     "preprocess": spec.to_dict(), "config": {}, "config_hash": None, "versions": versions(), "train_fps": 25.0}, ckpt)
    say(f"bench: a random-init {backbone}-{depth} width {width} at {frames}×{crop}² exported to {root / 'export'}"
        + ("; INT8 calibrated on the built-in synthetic videos" if int8 else ""))
    export(ckpt, ExportOptions(out=root / "export", fp16=True, trt=trt, int8=int8, parity_clips=8,
                               # Random weights: any calibration gives an INT8 graph of the same speed. Few
                               # clips keep memory down: ORT's calibrator holds every activation of every clip
                               # (16 clips of R(2+1)D at 16×112² took 6.1 GB).
                               int8_options=Int8Options(calib_clips=BENCH_CALIB_CLIPS, fallback=False), accuracy_check=False), say=say)
    return root / "export"
