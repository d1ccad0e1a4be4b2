"""How each row of the artefact table (`runtime/artifacts.py`) is built: one builder per
artefact, from the PyTorch model or from its `source` artefact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..runtime.artifacts import ARTIFACTS, Artifact
from .onnx_export import convert_fp16, export_onnx
from .torch_backend import LoadedModel


@dataclass
class BuildInputs:
    model: LoadedModel
    clip_shape: tuple[int, int, int, int]
    meta: dict  # model.json, also attached to the ONNX graph
    batch: tuple[int, int, int]  # TensorRT's profile MIN:OPT:MAX
    out: Path


def _onnx(a: Artifact, x: BuildInputs) -> dict:
    return export_onnx(x.model.module, x.model.outputs, x.clip_shape, x.out / a.file, x.meta)


def _fp16(a: Artifact, x: BuildInputs) -> dict:
    return convert_fp16(x.out / ARTIFACTS[a.source].file, x.out / a.file)


def _tensorrt(a: Artifact, x: BuildInputs) -> dict:
    from .tensorrt_build import build_engine  # raises TensorRTUnavailable where TensorRT or a GPU is missing

    return build_engine(x.out / ARTIFACTS[a.source].file, x.out / a.file, x.batch, x.clip_shape, timing_cache=x.out / "timing.cache")


BUILDERS: dict[str, Callable[[Artifact, BuildInputs], dict]] = {"onnxruntime": _onnx, "onnxruntime-fp16": _fp16, "tensorrt": _tensorrt}


def build_order(wanted: set[str]) -> list[Artifact]:
    """The wanted artefacts and those they are built from, sources first."""
    def chain(name: str) -> list[str]:
        src = ARTIFACTS[name].source
        return (chain(src) if src else []) + [name]

    names = list(dict.fromkeys(n for w in sorted(wanted, key=lambda n: len(chain(n))) for n in chain(w)))
    return [ARTIFACTS[n] for n in names]
