"""The PyTorch reference a run or bench asks for with `--backend torch`: the checkpoint behind an
export (or a run folder, or a .pt), loaded as the runtime's backends are, with its model facts.
Apart from torch_backend.py so that model.json's writer (metadata.py) and the loader do not import each other."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PRPError
from ..rundir import MODEL_INFO_FILE, load_checkpoint
from ..runtime.model_info import parse_model_info, read_model_info
from .metadata import model_metadata, preprocess_of
from .torch_backend import TorchBackend, load_model, resolve_checkpoint


def torch_reference(model: Path):
    """(ModelInfo, TorchBackend) for `--backend torch`: an export folder (its source checkpoint), a run folder or a .pt."""
    model = Path(model)
    if model.is_dir() and (model / MODEL_INFO_FILE).exists():
        ckpt = Path(read_model_info(model).raw["source"]["checkpoint"])
        if not ckpt.exists():
            raise PRPError(f"{model}: its checkpoint {ckpt} is not here; --backend torch needs the run folder or checkpoint")
    else:
        ckpt = resolve_checkpoint(model, "finetune" if not model.is_dir() or (model / "finetune" / "best.pt").exists() else "pretrain")
    loaded = load_model(ckpt, "finetune" if load_checkpoint(ckpt).get("stage") == "finetune" else "pretrain")
    backend = TorchBackend(loaded)
    spec = preprocess_of(loaded.state)
    dim = int(backend.run(np.zeros((1, 3, spec.frames, spec.crop, spec.crop), np.float32))["features"].shape[1])
    return parse_model_info(model_metadata(loaded, dim), str(ckpt)), backend
