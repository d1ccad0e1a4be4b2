"""Backbones (one family per file), the PRP heads and the models built from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..errors import PRPError
from .c3d import C3D, c3d
from .layers import global_avg_pool, retrieval_features
from .prp import ActionRecognizer, Decoder, PRPModel, RateHead
from .resnet3d import VideoResNet, r2plus1d, r3d

BACKBONES = ("c3d", "r3d", "r21d")


@dataclass(frozen=True)
class EncoderConfig:
    backbone: str = "r21d"  # c3d | r3d | r21d
    depth: int = 10  # 10 or 18 for r3d/r21d; C3D has one depth (its 8 conv layers) and ignores it
    width: float = 1.0  # channel multiplier; 1.0 is the paper's network
    subtract_mean: bool = False  # centre each pixel over the clip's time first (layers.subtract_clip_mean); the paper: off

    def to_dict(self) -> dict:
        return asdict(self)


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """The encoder named by `cfg`; its `out_channels` is conv5's channel count."""
    if cfg.width <= 0:
        raise PRPError(f"width must be positive, got {cfg.width}")
    if cfg.backbone == "c3d":
        return c3d(width=cfg.width, subtract_mean=cfg.subtract_mean)
    if cfg.depth not in (10, 18):
        raise PRPError(f"depth must be 10 or 18, got {cfg.depth}")
    if cfg.backbone == "r3d":
        return r3d(depth=cfg.depth, width=cfg.width, subtract_mean=cfg.subtract_mean)
    if cfg.backbone == "r21d":
        return r2plus1d(depth=cfg.depth, width=cfg.width, subtract_mean=cfg.subtract_mean)
    raise PRPError(f"unknown backbone {cfg.backbone!r}; expected one of {', '.join(BACKBONES)}")


def check_input_shape(frames: int, crop: int) -> None:
    """The encoders divide T by 8 and H, W by 16, and the decoder multiplies them back."""
    if frames % 8 or crop % 16:
        raise PRPError(f"clip length must be a multiple of 8 and crop a multiple of 16, got {frames} frames, crop {crop}")


__all__ = [
    "ActionRecognizer", "BACKBONES", "C3D", "Decoder", "EncoderConfig", "PRPModel", "RateHead", "VideoResNet",
    "build_encoder", "c3d", "check_input_shape", "global_avg_pool", "r2plus1d", "r3d", "retrieval_features",
]
