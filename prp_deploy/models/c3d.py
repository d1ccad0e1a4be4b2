"""C3D (Tran et al. 2015) as PRP and VCOP use it: eight 3×3×3 conv blocks with BatchNorm.

Input (N, 3, T, H, W) → conv5 map (N, 512, T/8, H/16, W/16); 512×2×7×7 at 16×112×112.
≈27.7 M parameters at width 1.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNReLU, scaled, subtract_clip_mean


class C3D(nn.Module):
    def __init__(self, *, width: float = 1.0, subtract_mean: bool = False):
        super().__init__()
        self.subtract_mean = subtract_mean
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.conv1 = ConvBNReLU(3, c1)
        self.pool1 = nn.MaxPool3d((1, 2, 2))  # keep time at the first pool, as C3D does
        self.conv2 = ConvBNReLU(c1, c2)
        self.pool2 = nn.MaxPool3d(2)
        self.conv3 = nn.Sequential(ConvBNReLU(c2, c3), ConvBNReLU(c3, c3))
        self.pool3 = nn.MaxPool3d(2)
        self.conv4 = nn.Sequential(ConvBNReLU(c3, c4), ConvBNReLU(c4, c4))
        self.pool4 = nn.MaxPool3d(2)
        self.conv5 = nn.Sequential(ConvBNReLU(c4, c4), ConvBNReLU(c4, c4))  # no pool after conv5
        self.out_channels = c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, T, H, W) → (N, C, T/8, H/16, W/16)
        if self.subtract_mean:
            x = subtract_clip_mean(x)
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        x = self.pool4(self.conv4(x))
        return self.conv5(x)


def c3d(*, depth: int | None = None, width: float = 1.0, subtract_mean: bool = False) -> C3D:
    """C3D has one depth (its 8 conv layers); `depth` is accepted and ignored, as for every builder."""
    return C3D(width=width, subtract_mean=subtract_mean)
