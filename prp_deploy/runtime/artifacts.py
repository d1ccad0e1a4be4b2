"""The one table of exported artefacts. Export builds from it, parity judges by it, and
`run --backend/--precision`, `bench`, Triton and the CLI's choices read it.

Adding an artefact: one row here and its builder in `export/build.py`'s BUILDERS (export
imports torch; this module stays torch-free). Which export flags ask for it, the backend
that runs it and its parity rule come from the row; a new engine also needs its backend
class in `backends.py`'s ENGINE_BACKENDS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import PRPError


@dataclass(frozen=True)
class Artifact:
    name: str  # what --backend / bench call it
    file: str  # its file in an export folder
    precision: str  # fp32 | fp16 | int8: the math inside (inputs and outputs are float32 always)
    engine: str  # the runtime backend that runs it (backends.ENGINE_BACKENDS): onnxruntime | tensorrt
    needs_gpu: bool
    parity: str  # the parity rule it is judged by (export/parity.py): fp32 (elementwise) | fp16 (cosine, top-1) | int8 (+ accuracy)
    triton_platform: str | None  # Triton's platform for it; None: not served by Triton
    source: str | None  # the artefact it is built from; None: from the PyTorch model
    auto: bool  # whether backend "auto" may pick it (in table order); never a reduced precision the user did not ask for (but see auto_if_faster)
    asked_by: tuple[str, ...]  # the export flags that, all given, ask for it (() = always); its sources come along
    # Backend auto may serve it before its engine's FP32 row, but only where export measured it
    # faster than FP32 on a machine like this one and parity passed it (runtime/speed.py).
    auto_if_faster: bool = False


ARTIFACTS: dict[str, Artifact] = {a.name: a for a in (
    Artifact("tensorrt", "model.plan", "fp16", "tensorrt", True, "fp16", "tensorrt_plan", "onnxruntime-fp16", True, ("trt",)),
    # TensorRT's INT8 engine is built from the signed, symmetric QDQ graph (the only one TensorRT accepts).
    Artifact("tensorrt-int8", "model_int8.plan", "int8", "tensorrt", True, "int8", "tensorrt_plan", "onnxruntime-int8-symmetric", False,
             ("trt", "int8")),
    Artifact("onnxruntime", "model.onnx", "fp32", "onnxruntime", False, "fp32", "onnxruntime_onnx", None, True, ()),
    Artifact("onnxruntime-fp16", "model_fp16.onnx", "fp16", "onnxruntime", False, "fp16", None, "onnxruntime", False, ("fp16",)),
    Artifact("onnxruntime-int8", "model_int8.onnx", "int8", "onnxruntime", False, "int8", "onnxruntime_onnx", "onnxruntime", False, ("int8",),
             auto_if_faster=True),
    # The same quantisation with signed symmetric activations and float biases: TensorRT's INT8
    # source, judged by parity like the rest; slower than UINT8 in ONNX Runtime's CPU kernels.
    Artifact("onnxruntime-int8-symmetric", "model_int8_symmetric.onnx", "int8", "onnxruntime", False, "int8", None, "onnxruntime", False,
             ("trt", "int8")),
    # The model with its activation and class activation maps as extra outputs (`prp-deploy
    # explain`); never served by run, last so that no choice of engine or precision finds it first.
    Artifact("onnxruntime-explain", "model_explain.onnx", "fp32", "onnxruntime", False, "fp32", None, None, False, ()),
)}
EXPLAIN_ROW = "onnxruntime-explain"
ENGINES = tuple(dict.fromkeys(a.engine for a in ARTIFACTS.values()))
PRECISIONS = tuple(dict.fromkeys(a.precision for a in ARTIFACTS.values()))


def by_file(name: str) -> Artifact | None:
    return next((a for a in ARTIFACTS.values() if a.file == name), None)


def for_path(path: Path) -> Artifact:
    """The row of a model file: by its export name, else by suffix (a user's own `x.onnx` runs as FP32 ONNX)."""
    a = by_file(path.name) or next((a for a in ARTIFACTS.values() if Path(a.file).suffix == path.suffix and a.source is None), None)
    a = a or next((a for a in ARTIFACTS.values() if Path(a.file).suffix == path.suffix), None)
    if a is None:
        raise PRPError(f"{path}: not a model file this runtime knows ({', '.join(sorted({Path(a.file).suffix for a in ARTIFACTS.values()}))})")
    return a


def choose(export_dir: Path, engine: str = "auto", precision: str | None = None) -> list[Artifact]:
    """The artefacts of an export folder to try, in table order, for `engine` and `precision`.

    engine auto without a precision: the rows marked auto (the FP16 engine, then FP32 ONNX;
    never a reduced precision on a CPU unasked; `backends.open_backend` adds INT8 where export
    measured it faster here). Only files present are returned.
    """
    if engine != "auto" and engine not in ENGINES:
        raise PRPError(f"unknown backend {engine!r}; expected auto, {', '.join(ENGINES)}")
    if precision is not None and precision not in PRECISIONS:
        raise PRPError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")
    rows = [a for a in ARTIFACTS.values()
            if (a.engine == engine if engine != "auto" else (a.auto or precision is not None)) and precision in (None, a.precision)]
    present = [a for a in rows if (Path(export_dir) / a.file).exists()]
    if not present:
        wanted = " ".join(x for x in (engine, precision) if x and x != "auto") or "runnable"
        why = _why_not_built(Path(export_dir), rows)
        raise PRPError(f"{export_dir}: no {wanted} model (looked for {', '.join(a.file for a in rows) or 'nothing: no artefact is both'}); "
                       + (why or "build it with `prp-deploy export` (--fp16, --trt)"))
    return present


def _why_not_built(export_dir: Path, rows: list[Artifact]) -> str | None:
    """What the export said of a looked-for file it did not build (parity.json's `declined`, then
    `not_built`), so that asking for it later says why rather than only that it is missing."""
    import json

    try:
        report = json.loads((export_dir / "parity.json").read_text())
        said = {**report.get("not_built", {}), **report.get("declined", {})}
    except (OSError, ValueError, AttributeError):
        return None
    return next((f"the export did not build {a.file}: {said[a.file]}" for a in rows if a.file in said), None)


def sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class UnverifiedModel(PRPError):
    """A model file parity has not passed: FAILED, never judged, changed since, or no parity.json."""


RECHECK = "check it with `prp-deploy export RUN --verify-only`, or run it anyway with --allow-unverified"


def verdict(path: Path) -> str | None:
    """Why `path` may not be served (None: parity.json beside it lists it as passed, with this
    file's sha256). Parity's verdict binds: a FAILED artefact, a file parity never judged, one
    that changed since it was judged (e.g. an export interrupted between rewriting a model and
    checking it), and a folder without parity.json are all refused."""
    path = Path(path)
    report = path.with_name("parity.json")
    if not report.exists():
        return f"{path}: no parity.json beside it, so no parity check has passed it; {RECHECK}"
    import json

    try:
        data = json.loads(report.read_text())
        passed, recorded = data.get("artifacts", {}).get(path.name), data.get("sha256", {}).get(path.name)
    except (OSError, ValueError, AttributeError):
        return f"{report}: unreadable; {RECHECK}"
    if passed is None or recorded is None:
        return f"{path}: parity never judged this file (it is not in {report.name}); {RECHECK}"
    if recorded != sha256(path):
        return f"{path}: is not the file parity checked (its sha256 differs from {report.name}'s); {RECHECK}"
    if passed is not True:
        return f"{path}: parity FAILED for it (see {report}); {RECHECK}"
    return None


def check_verified(path: Path) -> None:
    """Raise UnverifiedModel unless parity passed this very file."""
    why = verdict(path)
    if why is not None:
        raise UnverifiedModel(why)
