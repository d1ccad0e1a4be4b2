"""Fold BatchNorm into the convolution before it, for inference graphs.

Every BatchNorm3d in these models follows a Conv3d inside an nn.Sequential, directly or as
the last layer of a nested Sequential (the (2+1)D conv). In eval mode BN is an affine map
per channel, so it merges into that conv's weight and bias and leaves an Identity.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _last_conv(m: nn.Module) -> tuple[nn.Module, str, nn.Conv3d] | None:
    """(parent, name, conv) of the conv whose output `m` produces last, if it is a Conv3d."""
    if isinstance(m, nn.Conv3d):
        return None
    if isinstance(m, nn.Sequential) and len(m):
        name = str(len(m) - 1)
        last = m[-1]
        if isinstance(last, nn.Conv3d):
            return m, name, last
        return _last_conv(last)
    return None


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` (eval mode) with every Conv3d → BatchNorm3d pair folded; returns (model, folded count)."""
    model = copy.deepcopy(model).eval()
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(1, len(seq)):
            if not isinstance(seq[i], nn.BatchNorm3d):
                continue
            prev = seq[i - 1]
            if isinstance(prev, nn.Conv3d):
                seq[i - 1] = fuse_conv_bn_eval(prev, seq[i])
            else:
                found = _last_conv(prev)
                if found is None:
                    continue
                parent, name, conv = found
                parent._modules[name] = fuse_conv_bn_eval(conv, seq[i])
            seq[i] = nn.Identity()
            folded += 1
    return model, folded


def count_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm3d) for m in model.modules())
