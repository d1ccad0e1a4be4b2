"""The backbones, in one dict that the config, the CLI's choices and the benchmarks read.

Adding a backbone: write its family in its own file in this folder with a plain builder
`name(*, depth, width, subtract_mean) -> nn.Module` (conv5 out, `out_channels` set), and
add one line here. Torch-free on purpose (builders are named, imported when used), so the
CLI can offer the choices without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Backbone:
    builder: str  # "module:function" in prp_deploy.models; called as f(*, depth, width, subtract_mean)
    depths: tuple[int, ...]  # the depths it comes in; () = one fixed depth (the config's depth is ignored)
    paper: str  # where it comes from

    def build(self) -> Callable:
        module, name = self.builder.split(":")
        return getattr(importlib.import_module(f"prp_deploy.models.{module}"), name)


BACKBONES: dict[str, Backbone] = {
    "c3d": Backbone("c3d:c3d", (), "Tran et al. 2015, C3D"),
    "r3d": Backbone("resnet3d:r3d", (10, 18), "Tran et al. 2018, R3D"),
    "r21d": Backbone("resnet3d:r2plus1d", (10, 18), "Tran et al. 2018, R(2+1)D"),
}
DEPTHS = tuple(sorted({d for b in BACKBONES.values() for d in b.depths}))
