"""Backbones (one family per file, listed in `registry.py`), the PRP heads and the models
built from them.

Importing this package imports no torch (the CLI reads the backbone choices and configs
without it); the network classes load on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..errors import PRPError
from .registry import BACKBONES, DEPTHS, Backbone

if TYPE_CHECKING:
    from torch import nn

_LAZY = {"C3D": "c3d", "c3d": "c3d", "global_avg_pool": "layers", "retrieval_features": "layers", "ActionRecognizer": "prp",
         "Decoder": "prp", "PRPModel": "prp", "RateHead": "prp", "VideoResNet": "resnet3d", "r2plus1d": "resnet3d", "r3d": "resnet3d"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class EncoderConfig:
    backbone: str = "r21d"  # a key of BACKBONES
    depth: int = 10  # one of the backbone's depths; ignored by a backbone with one depth (C3D)
    width: float = 1.0  # channel multiplier; 1.0 is the paper's network
    subtract_mean: bool = False  # centre each pixel over the clip's time first (layers.subtract_clip_mean); the paper: off

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> "EncoderConfig":
        if self.backbone not in BACKBONES:
            raise PRPError(f"unknown backbone {self.backbone!r}; expected one of {', '.join(BACKBONES)}")
        depths = BACKBONES[self.backbone].depths
        if depths and self.depth not in depths:
            raise PRPError(f"{self.backbone} depth must be one of {', '.join(map(str, depths))}, got {self.depth}")
        if self.width <= 0:
            raise PRPError(f"width must be positive, got {self.width}")
        return self


def build_encoder(cfg: EncoderConfig) -> "nn.Module":
    """The encoder named by `cfg`; its `out_channels` is conv5's channel count."""
    cfg.check()
    encoder = BACKBONES[cfg.backbone].build()(depth=cfg.depth, width=cfg.width, subtract_mean=cfg.subtract_mean)
    encoder.strides = BACKBONES[cfg.backbone].strides  # what the decoder undoes
    return encoder


def check_input_shape(frames: int, crop: int, backbone: str) -> None:
    """The encoder divides T and H, W by its registry strides, and the decoder multiplies them back."""
    if backbone not in BACKBONES:
        raise PRPError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    st, ss = BACKBONES[backbone].strides
    if frames % st or crop % ss:
        raise PRPError(f"{backbone}: clip length must be a multiple of {st} and crop a multiple of {ss}, got {frames} frames, crop {crop}")


def encoder_config_of(state: dict) -> EncoderConfig:
    """The encoder config a checkpoint carries."""
    e = state["encoder"]
    return EncoderConfig(e["backbone"], int(e["depth"]), float(e["width"]), bool(e.get("subtract_mean", False)))


def load_encoder_weights(encoder: "nn.Module", state: dict, expected: EncoderConfig, path) -> None:
    """Copy only the encoder's weights from a PRP or finetune checkpoint into `encoder`."""
    got = encoder_config_of(state)
    same_depth = not BACKBONES.get(got.backbone, BACKBONES["r21d"]).depths or got.depth == expected.depth
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


__all__ = [
    "ActionRecognizer", "BACKBONES", "Backbone", "C3D", "DEPTHS", "Decoder", "EncoderConfig", "PRPModel", "RateHead", "VideoResNet",
    "build_encoder", "c3d", "check_input_shape", "encoder_config_of", "global_avg_pool", "load_encoder_weights", "r2plus1d", "r3d",
    "retrieval_features",
]
