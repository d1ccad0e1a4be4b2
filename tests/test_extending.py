"""The manual's Layout claims (docs/development.md), run: adding an artefact is its row and its builder, adding a
backbone is its family and one registry line with its strides. A toy row and a toy backbone
(strides 4 and 8, where every shipped backbone has 8 and 16) go through training (DG-P, so
the decoder is built from the strides), export, parity and the runtime with nothing else
changed."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prp_deploy import Recognizer
from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.export import build as export_build
from prp_deploy.export.pipeline import ExportOptions, export
from prp_deploy.models import registry
from prp_deploy.runtime import artifacts
from prp_deploy.runtime.run import RunOptions, RunSettings, run
from prp_deploy.training.config_files import build_config
from prp_deploy.training.pipeline import train
from tests.conftest import shared_clips


class ToyEncoder(nn.Module):
    """Two strided convolutions: time /4, space /8 (the shipped backbones: /8, /16)."""

    def __init__(self, channels: int, subtract_mean: bool):
        super().__init__()
        self.subtract_mean, self.out_channels = subtract_mean, channels
        self.net = nn.Sequential(nn.Conv3d(3, channels, 3, stride=(2, 4, 4), padding=1), nn.BatchNorm3d(channels), nn.ReLU(),
                                 nn.Conv3d(channels, channels, 3, stride=2, padding=1), nn.BatchNorm3d(channels), nn.ReLU())

    def forward(self, x):
        return self.net(x - x.mean(dim=2, keepdim=True) if self.subtract_mean else x)


def toy_encoder(*, depth, width, subtract_mean):
    return ToyEncoder(max(8, int(64 * width)), subtract_mean)


def build_graph_optimised(a, x) -> dict:
    """The toy row: model.onnx as ONNX Runtime's own graph optimiser rewrites it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(x.out / a.file)
    ort.InferenceSession(str(x.out / artifacts.ARTIFACTS[a.source].file), so, providers=["CPUExecutionProvider"])
    return {"optimised_by": "onnxruntime basic"}


@pytest.fixture
def toy_table(monkeypatch):
    monkeypatch.setitem(registry.BACKBONES, "toy", registry.Backbone(lambda: toy_encoder, (), (4, 8), "a test's toy"))
    row = artifacts.Artifact("onnxruntime-opt", "model_opt.onnx", "fp32", "onnxruntime", False, "fp32", None, "onnxruntime", False, ())
    monkeypatch.setitem(artifacts.ARTIFACTS, row.name, row)
    monkeypatch.setitem(export_build.EXTRA_BUILDERS, row.name, build_graph_optimised)
    return row


def test_a_toy_backbone_and_a_toy_artefact_run_end_to_end(toy_table, tmp_path):
    data = write_synthetic(tmp_path / "data", SynthSpec(classes=3, groups=3, clips_per_group=2, width=64, height=48, min_frames=20, max_frames=30))
    cfg = build_config("tiny", None, {
        "model": {"backbone": "toy", "width": 0.25},
        "data": {"data": str(data), "dataset": "ucf101", "preprocess": {"short_side": 40, "frames": 8, "crop": 32}, "workers": 0, "use_cache": False},
        "pretrain": {"objective": "dgp", "epochs": 1, "batch_size": 6, "clips_per_epoch": 12, "val_clips": 1},
        "finetune": {"epochs": 1, "batch_size": 8, "clips_per_epoch": 8 * 100, "labels_per_class": None, "val_clips": 1},
        "eval": {"clips": 2}, "seed": 0})
    out = train(cfg, out=tmp_path / "run", say=lambda s: None)  # DG-P: the decoder undoes strides (4, 8)
    state = torch.load(out / "pretrain" / "last.pt", weights_only=True)
    assert any(k.startswith("decoder.up.2") for k in state["model"]) and not any(k.startswith("decoder.up.3") for k in state["model"])
    result = export(out, ExportOptions(parity_clips=12), say=lambda s: None)
    assert "model_opt.onnx" in result.artifacts and result.report.artifact_passed("model_opt.onnx"), result.report.table()
    rec = Recognizer(out / "export" / "model_opt.onnx")  # served: parity passed this file
    assert rec.backend.verified and rec.backend.path.name == "model_opt.onnx"
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    a = run(str(video), model=out / "export" / "model_opt.onnx", options=RunSettings(windows=RunOptions(task="recognize")))
    b = run(str(video), model=out / "export" / "model.onnx", options=RunSettings(windows=RunOptions(task="recognize")))
    assert a["sources"][0]["video_top1"] == b["sources"][0]["video_top1"] and a["sources"][0]["windows"] == b["sources"][0]["windows"] > 5


def test_a_shape_the_backbone_cannot_take_is_refused_with_its_own_strides(toy_table):
    from prp_deploy.errors import PRPError
    from prp_deploy.models import check_input_shape

    check_input_shape(4, 8, "toy")  # fine for strides (4, 8), not for (8, 16)
    with pytest.raises(PRPError, match="r21d: clip length must be a multiple of 8 and crop a multiple of 16"):
        check_input_shape(4, 8, "r21d")
    with pytest.raises(PRPError, match="toy: clip length must be a multiple of 4 and crop a multiple of 8, got 6 frames"):
        check_input_shape(6, 8, "toy")
