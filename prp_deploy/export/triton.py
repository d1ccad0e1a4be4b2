"""A Triton Inference Server model repository: one model per engine (a Triton model has one platform).

DIR/triton/<name>_onnx/{config.pbtxt, 1/model.onnx}
DIR/triton/<name>_trt/{config.pbtxt, 1/model.plan}      (when the engine was built)

Serve with `tritonserver --model-repository DIR/triton`.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def config_pbtxt(name: str, platform: str, max_batch: int, clip_shape, outputs: dict[str, int], preferred: list[int], kind: str) -> str:
    """Protobuf text format of Triton's ModelConfig; dims exclude the batch dimension."""
    def dims(d):
        return "[ " + ", ".join(str(int(x)) for x in d) + " ]"

    outs = ",\n".join(f'  {{\n    name: "{o}"\n    data_type: TYPE_FP32\n    dims: {dims([n])}\n  }}' for o, n in outputs.items())
    return (
        f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {int(max_batch)}\n'
        f'input [\n  {{\n    name: "clip"\n    data_type: TYPE_FP32\n    dims: {dims(clip_shape)}\n  }}\n]\n'
        f"output [\n{outs}\n]\n"
        f"dynamic_batching {{\n  preferred_batch_size: {dims(preferred)}\n  max_queue_delay_microseconds: 2000\n}}\n"
        f"instance_group [\n  {{\n    count: 1\n    kind: {kind}\n  }}\n]\n"
    )


def write_repository(export_dir: Path, name: str, clip_shape, outputs: dict[str, int], batch: tuple[int, int, int]) -> list[Path]:
    """Write the repository under export_dir/triton; returns the model folders written."""
    root = export_dir / "triton"
    written = []
    engines = [("onnx", "onnxruntime_onnx", "model.onnx", "KIND_AUTO"), ("trt", "tensorrt_plan", "model.plan", "KIND_GPU")]
    for suffix, platform, artefact, kind in engines:
        src = export_dir / artefact
        if not src.exists():
            continue
        model_dir = root / f"{name}_{suffix}"
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, model_dir / "1" / artefact)
        preferred = sorted({b for b in (batch[1], batch[2]) if b >= 1})
        (model_dir / "config.pbtxt").write_text(config_pbtxt(f"{name}_{suffix}", platform, batch[2], clip_shape, outputs, preferred, kind))
        written.append(model_dir)
    return written
