"""R3D and R(2+1)D (Tran et al. 2018) in the PRP/VCOP form: basic blocks, no stem max-pool.

Depth 10 (one block per stage, the paper's nets, ≈14.4 M parameters each) and depth 18
(two per stage, the common modern variant). The family is one ResNet; the conv type is
passed in as a class and knows its own shape, as torchvision's video ResNets do.

Input (N, 3, T, H, W) → conv5 map (N, 512, T/8, H/16, W/16).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import scaled, subtract_clip_mean


def midplanes(in_ch: int, out_ch: int, t: int = 3, k: int = 3) -> int:
    """(2+1)D mid channels M = ⌊t·k·k·Cin·Cout / (k·k·Cin + t·Cout)⌋: the factorised conv keeps the 3-D conv's parameter count."""
    return (t * k * k * in_ch * out_ch) // (k * k * in_ch + t * out_ch)


class Conv3DSimple(nn.Conv3d):
    """A full 3×3×3 convolution (R3D)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


class Conv2Plus1D(nn.Sequential):
    """Spatial (1, 3, 3) conv → BN → ReLU → temporal (3, 1, 1) conv (R(2+1)D)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        mid = midplanes(in_ch, out_ch)
        super().__init__(
            nn.Conv3d(in_ch, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_ch, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class BasicBlock(nn.Module):
    def __init__(self, conv: type[nn.Module], in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Sequential(conv(in_ch, out_ch, stride), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(out_ch, out_ch), nn.BatchNorm3d(out_ch))
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv3d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm3d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


def r3d_stem(out_ch: int) -> nn.Sequential:
    """3×7×7 conv, stride (1, 2, 2): halves space, keeps time (VCOP's stem; no max-pool)."""
    return nn.Sequential(
        nn.Conv3d(3, out_ch, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True)
    )


def r2plus1d_stem(out_ch: int) -> nn.Sequential:
    """The stem factorised: (1, 7, 7) spatial → M mid channels (83 at width 1) → (3, 1, 1) temporal."""
    mid = midplanes(3, out_ch, t=3, k=7)
    return nn.Sequential(
        nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, out_ch, (3, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(out_ch),
        nn.ReLU(inplace=True),
    )


class VideoResNet(nn.Module):
    def __init__(self, conv: type[nn.Module], stem, layers: tuple[int, int, int, int], width: float = 1.0, subtract_mean: bool = False):
        super().__init__()
        self.subtract_mean = subtract_mean
        chans = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.stem = stem(chans[0])
        stages, in_ch = [], chans[0]
        for i, (ch, n) in enumerate(zip(chans, layers)):
            blocks = [BasicBlock(conv, in_ch, ch, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(conv, ch, ch) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = chans[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, T, H, W) → (N, C, T/8, H/16, W/16)
        if self.subtract_mean:
            x = subtract_clip_mean(x)
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


_LAYERS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}


def _layers(depth: int) -> tuple[int, int, int, int]:
    if depth not in _LAYERS:
        raise ValueError(f"depth must be 10 or 18, got {depth}")
    return _LAYERS[depth]


def r3d(*, depth: int = 10, width: float = 1.0, subtract_mean: bool = False) -> VideoResNet:
    return VideoResNet(Conv3DSimple, r3d_stem, _layers(depth), width, subtract_mean)


def r2plus1d(*, depth: int = 10, width: float = 1.0, subtract_mean: bool = False) -> VideoResNet:
    return VideoResNet(Conv2Plus1D, r2plus1d_stem, _layers(depth), width, subtract_mean)
