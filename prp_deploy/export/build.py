"""Building the rows of the artefact table (`runtime/artifacts.py`): what every builder is
given, the order (sources first), and the builder each row names."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    built: dict[str, dict] = field(default_factory=dict)  # row name → facts of its build, filled as rows are built (sources first)


def builders() -> dict[str, Callable[[Artifact, BuildInputs], dict]]:
    """Each artefact row's builder, by row name: f(artifact, BuildInputs) → facts of the build."""
    from .explain_graph import build_explain
    from .int8 import build_int8, build_int8_symmetric
    from .onnx_export import build_fp16, build_fp32
    from .tensorrt_build import build, build_int8 as build_tensorrt_int8

    return {"onnxruntime": build_fp32, "onnxruntime-fp16": build_fp16, "onnxruntime-int8": build_int8,
            "onnxruntime-int8-symmetric": build_int8_symmetric, "tensorrt": build, "tensorrt-int8": build_tensorrt_int8,
            "onnxruntime-explain": build_explain, **EXTRA_BUILDERS}


EXTRA_BUILDERS: dict[str, Callable] = {}  # builders of rows added at run time (a plug-in, a test's toy row)


def builder(a: Artifact) -> Callable[[Artifact, BuildInputs], dict]:
    found = builders().get(a.name)
    if found is None:
        raise KeyError(f"artefact row {a.name!r} has no builder in export/build.py")
    return found


def wanted_rows(flags: set[str]) -> set[str]:
    """The rows the export flags ask for: each row names the flags that ask for it (artifacts.py)."""
    return {a.name for a in ARTIFACTS.values() if set(a.asked_by) <= flags}


def build_order(wanted: set[str]) -> list[Artifact]:
    """The wanted artefacts and those they are built from, sources first."""
    def chain(name: str) -> list[str]:
        src = ARTIFACTS[name].source
        return (chain(src) if src else []) + [name]

    names = list(dict.fromkeys(n for w in sorted(wanted, key=lambda n: len(chain(n))) for n in chain(w)))
    return [ARTIFACTS[n] for n in names]
