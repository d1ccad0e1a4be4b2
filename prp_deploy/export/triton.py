"""A Triton Inference Server model repository: one model per artefact with a Triton platform
in the artefact table (a Triton model has one platform).

DIR/triton/<name>_<artefact>/{config.pbtxt, 1/<file>}

`config.pbtxt` is Triton's own ModelConfig protobuf (from tritonclient), written in the
protobuf text format. Serve with `tritonserver --model-repository DIR/triton`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import PRPError
from ..files import atomic_write
from ..runtime.artifacts import ARTIFACTS, verdict


def model_config(name: str, platform: str, max_batch: int, clip_shape, outputs: dict[str, int], preferred: list[int], gpu: bool):
    """Triton's ModelConfig message; dims exclude the batch dimension."""
    try:
        from tritonclient.grpc import model_config_pb2 as mc
    except ImportError:
        raise PRPError("--triton needs tritonclient's ModelConfig: pip install 'prp-deploy[triton]'") from None
    config = mc.ModelConfig(name=name, platform=platform, max_batch_size=int(max_batch))
    config.input.add(name="clip", data_type=mc.TYPE_FP32, dims=[int(d) for d in clip_shape])
    for output, size in outputs.items():
        config.output.add(name=output, data_type=mc.TYPE_FP32, dims=[int(size)])
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = 2000
    kind = mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_AUTO
    config.instance_group.add(count=1, kind=kind)
    return config


def write_repository(export_dir: Path, name: str, clip_shape, outputs: dict[str, int], batch: tuple[int, int, int],
                     say=lambda s: None) -> list[Path]:
    """Write the repository under export_dir/triton; returns the model folders written. Only
    artefacts parity passed go in; one it did not pass is left out, saying why, and its folder
    from an earlier export is removed (Triton would serve it)."""
    from google.protobuf import text_format

    written = []
    for a in ARTIFACTS.values():
        src = export_dir / a.file
        if a.triton_platform is None or not src.exists():
            continue
        model_name = f"{name}_{a.name.replace('-', '_')}"
        model_dir = export_dir / "triton" / model_name
        why = verdict(src)
        if why is not None:
            say(f"triton: leaving out {a.file}: {why.split('; ')[0].split(': ', 1)[1]}")
            shutil.rmtree(model_dir, ignore_errors=True)
            continue
        preferred = sorted({b for b in (batch[1], batch[2]) if b >= 1})
        config = model_config(model_name, a.triton_platform, batch[2], clip_shape, outputs, preferred, a.needs_gpu)
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, model_dir / "1" / a.file)
        atomic_write(model_dir / "config.pbtxt", text_format.MessageToString(config))
        written.append(model_dir)
    return written
