"""model.json: every fact the runtime needs about an exported model, from its checkpoint
(which carries its preprocessing spec and config hash: nothing is recomputed here)."""

from __future__ import annotations

import torch

from ..data.preprocess import Preprocess
from ..rundir import versions
from ..runtime.model_info import MODEL_SCHEMA_VERSION
from .torch_backend import LoadedModel


def preprocess_of(state: dict) -> Preprocess:
    return Preprocess.from_dict(state["preprocess"])


def model_metadata(model: LoadedModel, feature_dim: int) -> dict:
    state, spec = model.state, preprocess_of(model.state)
    classes = list(state.get("classes", [])) if model.kind == "recognizer" else []
    outputs = {"features": [-1, feature_dim]}
    if classes:
        outputs = {"logits": [-1, len(classes)], **outputs}
    cfg = state.get("config", {})
    return without_none({
        "schema_version": MODEL_SCHEMA_VERSION,
        "kind": model.kind,
        "classes": classes,
        "input": {"name": "clip", "shape": [-1, 3, spec.frames, spec.crop, spec.crop], "dtype": "float32", "layout": "NCTHW"},
        "outputs": outputs,
        "preprocess": spec.to_dict(),
        "sample_rate": spec.sample_rate,
        "train_fps": float(state.get("train_fps") or 0.0),
        "backbone": state["encoder"],
        "objective": cfg.get("pretrain", {}).get("objective"),
        "dataset": state.get("dataset") or cfg.get("data", {}).get("dataset"),
        "config_hash": state.get("config_hash"),
        "source": {"checkpoint": str(model.checkpoint), "stage": state.get("stage"), "epoch": state.get("epoch")},
        "versions": versions(),
        # conv5's channels: the features output is (C, T', H', W') flattened, which the video
        # library pools per channel into its C-dimensional vector.
        "feature_channels": int(model.module.encoder.out_channels),
    })


def without_none(d):
    """The same JSON tree without null values: OpenCV's JSON reader (the C++ example) rejects null."""
    if isinstance(d, dict):
        return {k: without_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [without_none(v) for v in d if v is not None]
    return d


def gflops_per_clip(module: torch.nn.Module, clip_shape) -> float:
    """Forward FLOPs of one clip (multiply-add = 2 FLOPs), for the runtime's GFLOP/s figures."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *clip_shape))
    return counter.get_total_flops() / 1e9
