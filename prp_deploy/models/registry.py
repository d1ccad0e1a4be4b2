"""The backbones, in one dict that the config, the CLI's choices and the benchmarks read.

Adding a backbone: write its family in its own file in this folder with a plain builder
`name(*, depth, width, subtract_mean) -> nn.Module` (conv5 out, `out_channels` set), and
add one line here, with its strides (nothing else assumes /8 and /16). Torch-free on
purpose (each builder is imported when it is first called), so the CLI can offer the
choices without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Backbone:
    build: Callable[[], Callable]  # returns the family's builder f(*, depth, width, subtract_mean), importing it (and torch) only then
    depths: tuple[int, ...]  # the depths it comes in; () = one fixed depth (the config's depth is ignored)
    strides: tuple[int, int]  # (temporal, spatial) from input to conv5: clip length and crop must be multiples; the decoder undoes them
    paper: str  # where it comes from


def _c3d():
    from .c3d import c3d

    return c3d


def _r3d():
    from .resnet3d import r3d

    return r3d


def _r21d():
    from .resnet3d import r2plus1d

    return r2plus1d


BACKBONES: dict[str, Backbone] = {
    "c3d": Backbone(_c3d, (), (8, 16), "Tran et al. 2015, C3D"),
    "r3d": Backbone(_r3d, (10, 18), (8, 16), "Tran et al. 2018, R3D"),
    "r21d": Backbone(_r21d, (10, 18), (8, 16), "Tran et al. 2018, R(2+1)D"),
}
DEPTHS = tuple(sorted({d for b in BACKBONES.values() for d in b.depths}))
