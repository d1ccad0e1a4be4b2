"""PyTorch → ONNX (FP32) and ONNX FP32 → FP16.

The graph: input `clip` float32 N×3×T×H×W with N dynamic, outputs `logits` and/or
`features`; BatchNorm folded before export; opset 18; onnx.checker must pass; the model's
metadata (model.json) travels in `metadata_props["prp_deploy"]`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from ..errors import PRPError
from ..files import atomic_write
from ..runtime.model_info import METADATA_KEY
from .fold import count_batchnorm, fold_batchnorm

OPSET = 18
MAX_BATCH = 4096


def attach_metadata(model: onnx.ModelProto, meta: dict) -> None:
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)


def export_onnx(module: torch.nn.Module, outputs: tuple[str, ...], clip_shape: tuple[int, int, int, int], path: Path, meta: dict) -> dict:
    """Fold BN, export with a dynamic batch, check, attach metadata; returns facts for the report."""
    folded, n_folded = fold_batchnorm(module)
    if count_batchnorm(folded):
        raise RuntimeError(f"{count_batchnorm(folded)} BatchNorm layers were left unfolded")
    example = torch.rand(2, *clip_shape)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The exporter logs a warning per torchvision op it cannot find; none is used here.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        raw = Path(tmp) / "model.onnx"
        torch.onnx.export(
            folded, (example,), str(raw), input_names=["clip"], output_names=list(outputs), opset_version=OPSET,
            dynamic_shapes={"clip": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}, dynamo=True, external_data=False,
            verbose=False,
        )
        model = onnx.load(str(raw))
    onnx.checker.check_model(model)
    ops = sorted({n.op_type for n in model.graph.node})
    if "BatchNormalization" in ops:
        raise RuntimeError("the exported graph still has BatchNormalization")
    attach_metadata(model, meta)
    model.producer_name = "prp-deploy"
    atomic_write(path, lambda tmp: onnx.save_model(model, str(tmp)))
    return {"opset": OPSET, "ops": ops, "batchnorm_folded": n_folded}


def convert_fp16(src: Path, dst: Path, keep_fp32_ops: tuple[str, ...] = ()) -> dict:
    """FP16 weights and math with FP32 inputs and outputs (onnxruntime's float16 converter).

    `keep_fp32_ops` leaves numerically fragile op types in FP32; the casts around them are
    inserted by the converter. ONNX Runtime runs the result on CPU too, so FP16 parity is
    checked on every machine before a GPU is involved.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32_ops))
    topological_sort(half.graph)  # the converter appends its input casts at the end of the node list
    onnx.checker.check_model(half)
    del half.metadata_props[:]
    for k, v in meta.items():
        p = half.metadata_props.add()
        p.key, p.value = k, v
    atomic_write(dst, lambda tmp: onnx.save_model(half, str(tmp)))
    return {"kept_fp32": sorted(set(keep_fp32_ops))}


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after the producers of its inputs (stable otherwise)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise RuntimeError(f"ONNX graph has a cycle or a missing input near node {pending[0].name!r}")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def perturb_onnx_weights(path: Path, scale: float = 0.05, seed: int = 0) -> None:
    """Add noise to the largest float initializer: a deliberately broken artefact, for testing parity."""
    import numpy as np
    from onnx import numpy_helper

    model = onnx.load(str(path))
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    if not floats:
        raise PRPError(f"{path}: no float initializer to perturb")
    target = max(floats, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(target)
    noisy = w + np.random.default_rng(seed).normal(0, scale * (float(np.abs(w).mean()) + 1e-6) * 20, w.shape).astype(w.dtype)
    target.CopyFrom(numpy_helper.from_array(noisy, target.name))
    onnx.save_model(model, str(path))


def build_fp32(a, x) -> dict:
    """The artefact table's FP32 ONNX row, from the PyTorch model."""
    return export_onnx(x.model.module, x.model.outputs, x.clip_shape, x.out / a.file, x.meta)


def build_fp16(a, x) -> dict:
    """The artefact table's FP16 ONNX row, from its source row's file."""
    from ..runtime.artifacts import ARTIFACTS

    return convert_fp16(x.out / ARTIFACTS[a.source].file, x.out / a.file)
