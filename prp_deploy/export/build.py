"""Building the rows of the artefact table (`runtime/artifacts.py`): what every builder is
given, the order (sources first), and the builder each row names."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..runtime.artifacts import ARTIFACTS, Artifact
from .int8 import Calibration, Int8Options
from .torch_backend import LoadedModel


@dataclass
class BuildInputs:
    model: LoadedModel
    clip_shape: tuple[int, int, int, int]
    meta: dict  # model.json, also attached to the ONNX graph
    batch: tuple[int, int, int]  # TensorRT's profile MIN:OPT:MAX
    out: Path  # the export folder: a row's file and its source's are here
    int8: Int8Options
    calibration: Calibration | None  # clips of the training videos, made only when an INT8 row is built
    say: Callable[[str], None]


def builder(a: Artifact) -> Callable[[Artifact, BuildInputs], dict]:
    module, name = a.builder.split(":")
    return getattr(importlib.import_module(f"prp_deploy.export.{module}"), name)


def build_order(wanted: set[str]) -> list[Artifact]:
    """The wanted artefacts and those they are built from, sources first."""
    def chain(name: str) -> list[str]:
        src = ARTIFACTS[name].source
        return (chain(src) if src else []) + [name]

    names = list(dict.fromkeys(n for w in sorted(wanted, key=lambda n: len(chain(n))) for n in chain(w)))
    return [ARTIFACTS[n] for n in names]
