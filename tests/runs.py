"""Run folders for export and runtime tests, made by the real `train` code path (tiny
budgets), once per configuration and copied where a test wants one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from prp_deploy.training.config_files import build_config
from prp_deploy.training.pipeline import train

_made: dict[tuple, Path] = {}
_root = Path(tempfile.mkdtemp(prefix="prp-test-runs-"))


def tiny_run_config(data: Path, backbone: str = "r3d", seed: int = 0, objective: str = "none", labels_per_class: int | None = None,
                    width: float = 0.125, short_side: int = 40, finetune_steps: int = 150):
    return build_config("tiny", None, {
        "model": {"backbone": backbone, "width": width},
        "data": {"data": str(data), "dataset": "ucf101", "preprocess": {"short_side": short_side, "frames": 8, "crop": 32}, "workers": 0,
                 "use_cache": False},
        "pretrain": {"objective": objective, "epochs": 1, "batch_size": 6, "clips_per_epoch": 12, "val_clips": 1},
        # 150 steps: a model that separates its classes, so parity's rules judge real margins
        # (a 2-step model's logits are near-ties everywhere, and no rule may pass on nothing).
        "finetune": {"epochs": 1, "batch_size": 8, "clips_per_epoch": 8 * finetune_steps, "labels_per_class": labels_per_class,
                     "val_clips": 1},
        "eval": {"clips": 2},
        "seed": seed,
    })


def make_run(dest: Path, data: Path, backbone: str = "r3d", seed: int = 0, stage: str = "finetune",
             labels_per_class: int | None = None, **shape) -> Path:
    """A run folder as `prp-deploy train` leaves it: `finetune` (a recogniser trained from random
    init, 150 steps) or `pretrain` (a DG-P encoder, 2 steps). Trained once per arguments. A
    label budget leaves training videos unlabelled: what INT8 export judges on; `shape` sets the
    width, short side and finetuning steps (tiny_run_config)."""
    key = (str(data), backbone, seed, stage, labels_per_class, tuple(sorted(shape.items())))
    if key not in _made:
        out = _root / f"{backbone}-{seed}-{stage}-{len(_made)}"
        cfg = tiny_run_config(data, backbone, seed, "none" if stage == "finetune" else "dgp", labels_per_class, **shape)
        train(cfg, stage=stage, out=out, say=lambda s: None)
        _made[key] = out
    shutil.copytree(_made[key], dest)
    return dest
