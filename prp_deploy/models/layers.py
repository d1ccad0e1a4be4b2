"""Small layers the model families share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (width 1.0 is the paper's network)."""
    return max(1, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    """Conv3d 3×3×3 (pad 1) → BatchNorm3d → ReLU: the C3D block, also used by the heads and decoder."""

    def __init__(self, in_ch: int, out_ch: int, bias: bool = True):
        super().__init__(nn.Conv3d(in_ch, out_ch, 3, padding=1, bias=bias), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True))


def subtract_clip_mean(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) minus its mean over T: what stays still in the clip is removed.

    Why: on small data a 3-D CNN fits the static appearance of each video long before it
    finds the motion (measured in docs/results.md). Centring each pixel over time leaves
    only what changes, the same idea as residual-frame inputs (Tao et al., 2020). It has no
    weights, so it travels inside the exported graph and the runtime needs no new step.

    Written as one depthwise temporal convolution, not `x - x.mean(2, keepdim=True)`:
    OpenCV's DNN module (the C++ example's engine; 4.6 tested) cannot broadcast a Sub or
    ReduceMean over 5-D tensors, but runs a Conv. With kernel 2T−1 and padding T−1, every
    output frame t sees all T input frames, weighted 1 − 1/T at t and −1/T elsewhere (the
    padding adds zeros): exactly x_t − mean(x). T is fixed when exported, like the pools.
    """
    n, c, t = x.shape[:3]
    w = torch.full((2 * t - 1,), -1.0 / t, dtype=x.dtype, device=x.device)
    w[t - 1] += 1.0
    return F.conv3d(x, w.view(1, 1, -1, 1, 1).expand(c, 1, -1, 1, 1), padding=(t - 1, 0, 0), groups=c)


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) → (N, C) by average pooling with an explicit kernel.

    Not AdaptiveAvgPool3d(1): it exports as GlobalAveragePool, which OpenCV's DNN importer
    rejects on 5-D tensors; an AveragePool with the full kernel computes the same and
    imports everywhere. The kernel is fixed at export time, as T, H, W are.
    """
    return F.avg_pool3d(x, kernel_size=tuple(int(s) for s in x.shape[2:])).flatten(1)


def retrieval_features(conv5: torch.Tensor) -> torch.Tensor:
    """The VCOP/PRP retrieval embedding: conv5 → MaxPool(1, 2, 2) → flatten (9216-d for C3D at 16×112²)."""
    return F.max_pool3d(conv5, kernel_size=(1, 2, 2)).flatten(1)
