"""What an exported model is, read back from `model.json` or the ONNX metadata.

Export writes every fact the runtime needs (classes, clip shape, preprocessing, frame
step, training fps) into `DIR/model.json` and into the ONNX `metadata_props` under the key
`prp_deploy`; the runtime never guesses preprocessing. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..data.preprocess import Preprocess
from ..contracts import validate
from ..errors import PRPError

MODEL_SCHEMA_VERSION = 1
METADATA_KEY = "prp_deploy"


@dataclass(frozen=True)
class ModelInfo:
    kind: str  # "recognizer" (logits + features) | "encoder" (features only)
    classes: tuple[str, ...]
    preprocess: Preprocess
    train_fps: float
    feature_dim: int
    input_name: str
    raw: dict  # the whole model.json, for what this class does not name

    @property
    def sample_rate(self) -> int:
        return self.preprocess.sample_rate

    @property
    def input_shape(self) -> tuple[int, int, int, int]:  # (3, T, crop, crop) of one clip
        p = self.preprocess
        return (3, p.frames, p.crop, p.crop)

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("logits", "features") if self.kind == "recognizer" else ("features",)


def parse_model_info(d: dict, where: str) -> ModelInfo:
    if not isinstance(d, dict):
        raise PRPError(f"{where}: model metadata is not a JSON object")
    validate(d, "model", where)  # the contract (contracts/model.schema.json): one line naming the field
    try:
        kind = d["kind"]
        if kind not in ("recognizer", "encoder"):
            raise PRPError(f"{where}: unknown model kind {kind!r}")
        classes = tuple(d["classes"])
        if kind == "recognizer" and not classes:
            raise PRPError(f"{where}: a recognizer needs class names")
        return ModelInfo(kind, classes, Preprocess.from_dict(d["preprocess"]), float(d.get("train_fps") or 0.0),
                         int(d["outputs"]["features"][1]), d["input"]["name"], d)
    except (KeyError, TypeError, IndexError) as e:
        raise PRPError(f"{where}: model metadata is missing {e}") from None


def read_model_info(path: str | Path) -> ModelInfo:
    """From an export folder (its model.json), a .onnx (its metadata, else model.json beside it) or a .plan (model.json beside it)."""
    path = Path(path)
    if not path.exists():
        raise PRPError(f"{path}: no such model")
    if path.is_dir():
        return _from_json(path / "model.json")
    if path.suffix == ".onnx":
        meta = _onnx_metadata(path)
        if meta is not None:
            return parse_model_info(meta, str(path))
    return _from_json(path.with_name("model.json"))


def _from_json(file: Path) -> ModelInfo:
    if not file.exists():
        raise PRPError(f"{file}: missing; the model's metadata travels there (re-export with `prp-deploy export`)")
    try:
        return parse_model_info(json.loads(file.read_text()), str(file))
    except json.JSONDecodeError as e:
        raise PRPError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None


def _onnx_metadata(path: Path) -> dict | None:
    """The prp_deploy entry of the ONNX metadata_props, read through onnxruntime (no onnx package needed)."""
    import onnxruntime as ort

    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a bad file
        raise PRPError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0][:160]})") from None
    text = sess.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise PRPError(f"{path}: its {METADATA_KEY} metadata is not valid JSON") from None
