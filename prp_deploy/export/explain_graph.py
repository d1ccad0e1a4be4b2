"""model_explain.onnx: the exported model with what `prp-deploy explain` draws as extra outputs,
so explaining an export needs no torch.

- `activation` (N, T', H', W'): conv5's channel-mean magnitude, the paper's Fig. 6 map.
- `cam` (N, K, T', H', W'), a recognizer only: the class activation map of every class,
  Σ_c w_kc · conv5_c. For global average pooling followed by one linear layer this is exact
  (the class's logit is the map's mean plus its bias), so it needs no gradients.

The graph is a row of the artefact table with the FP32 rule over every output, so parity
judges these maps like any artefact's outputs before the runtime serves them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import retrieval_features
from ..models.layers import global_avg_pool
from .onnx_export import export_onnx
from .torch_backend import LoadedModel, TorchBackend

EXPLAIN_OUTPUTS = ("activation", "cam")


class ExplainModel(nn.Module):
    """The loaded model's outputs, then `activation` and (recognizer) `cam` from the same conv5."""

    def __init__(self, model: LoadedModel):
        super().__init__()
        self.encoder = model.module.encoder
        self.fc = model.module.fc if model.kind == "recognizer" else None

    def forward(self, clip: torch.Tensor):
        conv5 = self.encoder(clip)
        activation = conv5.abs().mean(1)
        if self.fc is None:
            return retrieval_features(conv5), activation
        logits = self.fc(global_avg_pool(conv5))
        cam = torch.einsum("kc,ncthw->nkthw", self.fc.weight, conv5)
        return logits, retrieval_features(conv5), activation, cam


def explain_outputs(model: LoadedModel) -> tuple[str, ...]:
    return (*model.outputs, "activation", *(("cam",) if model.kind == "recognizer" else ()))


def explain_reference(model: LoadedModel) -> TorchBackend:
    """The PyTorch reference for parity of the explain graph (every output, maps included)."""
    ref = TorchBackend(model)
    ref.module = ExplainModel(model).eval()
    ref.outputs = explain_outputs(model)
    return ref


def build_explain(a, x) -> dict:
    """The artefact table's explain row, from the PyTorch model."""
    return export_onnx(ExplainModel(x.model).eval(), explain_outputs(x.model), x.clip_shape, x.out / a.file, x.meta)
