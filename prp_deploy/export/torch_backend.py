"""The PyTorch model that ships, rebuilt from a checkpoint: the export source and the
reference backend parity compares against (`--backend torch` in the runtime uses it too, via reference.py).

One graph: clip (N, 3, T, H, W) → logits (N, classes) and features (N, D) for a finetuned
run; features only for a pretrained encoder (`--from pretrain`, the retrieval model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PRPError
from ..models import ActionRecognizer, build_encoder, encoder_config_of, load_encoder_weights, retrieval_features
from ..rundir import load_checkpoint


class EncoderFeatures(nn.Module):
    """A pretrained encoder as a feature extractor: conv5 → max-pool (1,2,2) → flatten."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return retrieval_features(self.encoder(clip))


@dataclass
class LoadedModel:
    module: nn.Module  # eval mode, float32, CPU
    kind: str  # "recognizer" | "encoder"
    state: dict  # the checkpoint
    checkpoint: Path

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("logits", "features") if self.kind == "recognizer" else ("features",)


def resolve_checkpoint(source: Path, stage: str) -> Path:
    """A run folder → RUN/<stage>/best.pt; a .pt file as it is."""
    source = Path(source)
    if not source.exists():
        raise PRPError(f"{source}: no such run folder or checkpoint")
    if source.is_dir():
        ckpt = source / stage / "best.pt"
        if not ckpt.exists():
            hint = "train it first" if stage == "finetune" else "this run has no pretraining (objective none?)"
            raise PRPError(f"{source}: no {stage}/best.pt ({hint}); `--from pretrain` exports the pretrained encoder")
        return ckpt
    return source


def load_model(checkpoint: Path, stage: str) -> LoadedModel:
    """The exportable model of a finetune or pretrain checkpoint, in eval mode on the CPU."""
    state = load_checkpoint(checkpoint)
    cfg = encoder_config_of(state)
    encoder = build_encoder(cfg)
    if stage == "finetune":
        if state.get("stage") != "finetune" or "classes" not in state:
            raise PRPError(f"{checkpoint}: not a finetuned checkpoint (stage {state.get('stage')!r}); use --from pretrain for a pretrained encoder")
        module = ActionRecognizer(encoder, len(state["classes"]))
        module.load_state_dict(state["model"])
        kind = "recognizer"
    else:
        load_encoder_weights(encoder, state, cfg, checkpoint)
        module = EncoderFeatures(encoder)
        kind = "encoder"
    return LoadedModel(module.eval().float(), kind, state, Path(checkpoint))


class TorchBackend:
    """The reference: the PyTorch FP32 model, same interface as the runtime's backends."""

    def __init__(self, model: LoadedModel, device: str = "cpu"):
        self.model, self.device = model, torch.device(device)
        self.module = model.module.to(self.device)
        self.name, self.outputs, self.max_batch = "torch", model.outputs, None

    @torch.no_grad()
    def run(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        out = self.module(torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)).to(self.device))
        values = out if isinstance(out, tuple) else (out,)
        return {name: v.float().cpu().numpy() for name, v in zip(self.outputs, values)}
