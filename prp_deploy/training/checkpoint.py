"""Checkpoints: written atomically, read with weights_only=True, and carrying their config.

A checkpoint rebuilds itself: it holds the encoder config (and class names for a
finetuned model) next to the weights, so export and finetuning need nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..errors import PRPError
from ..models import EncoderConfig

CHECKPOINT_VERSION = 1


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
    try:
        torch.save({**state, "checkpoint_version": CHECKPOINT_VERSION}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load with weights_only=True (no pickled code runs); a user error if it is not ours."""
    path = Path(path)
    if not path.exists():
        raise PRPError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or foreign file
        raise PRPError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or "model" not in state or "encoder" not in state:
        raise PRPError(f"{path}: not a prp-deploy checkpoint (no model weights and encoder config)")
    if state.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise PRPError(f"{path}: checkpoint version {state.get('checkpoint_version')} is not supported (expected {CHECKPOINT_VERSION})")
    return state


def encoder_config_of(state: dict) -> EncoderConfig:
    e = state["encoder"]
    return EncoderConfig(e["backbone"], int(e["depth"]), float(e["width"]), bool(e.get("subtract_mean", False)))


def load_encoder_weights(encoder: torch.nn.Module, state: dict, expected: EncoderConfig, path: Path) -> None:
    """Copy only the encoder's weights from a PRP or finetune checkpoint into `encoder`."""
    got = encoder_config_of(state)
    same_depth = got.backbone == "c3d" or got.depth == expected.depth
    if got.subtract_mean != expected.subtract_mean:
        flag = "--subtract-mean" if got.subtract_mean else "--no-subtract-mean"
        raise PRPError(f"{path}: its encoder was trained with subtract_mean={got.subtract_mean}, this run has {expected.subtract_mean}; pass {flag}")
    if got.backbone != expected.backbone or not same_depth or got.width != expected.width:
        raise PRPError(
            f"{path}: holds a {got.backbone} (depth {got.depth}, width {got.width}) encoder, "
            f"this run builds {expected.backbone} (depth {expected.depth}, width {expected.width}); "
            f"pass --backbone {got.backbone} --depth {got.depth} --width {got.width}"
        )
    prefix = "encoder."
    weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    if not weights:
        raise PRPError(f"{path}: has no encoder weights")
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise PRPError(f"{path}: encoder weights do not fit ({len(missing)} missing, {len(unexpected)} unexpected, e.g. {(missing + unexpected)[0]})")
