"""`prp-deploy explain`: the maps come from model_explain.onnx (checked by parity), run torch-free,
and are what they claim: the CAM is exact for global pooling + linear, the activation map is conv5's
channel-mean magnitude, and the motion map is the data layer's M of the same clip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from prp_deploy.data.sampling import motion_attention
from prp_deploy.errors import PRPError
from prp_deploy.runtime.explain import PANEL, explain_video, mass_inside, open_explainer, read_frames

CLI = [sys.executable, "-m", "prp_deploy"]


def a_video(exported):
    return sorted((exported.parent.parent / "data" / "UCF-101").rglob("*.avi"))[0]


def test_the_explain_graph_is_judged_by_parity(exported):
    report = json.loads((exported / "parity.json").read_text())
    assert report["artifacts"]["model_explain.onnx"] is True
    outputs = {c["output"] for c in report["checks"] if c["artifact"] == "model_explain.onnx" and c["inputs"] == "real"}
    assert outputs == {"logits", "features", "activation", "cam"}


def test_the_cam_is_exact_and_the_maps_are_the_clips(exported):
    """logits − mean(CAM) is the same vector (the classifier's bias) for every clip; the motion map is
    motion_attention of the very frames explained; the window's frames are the preprocessed video's."""
    info, backend = open_explainer(exported)
    frames = np.stack(read_frames(a_video(exported), info))
    p = info.preprocess
    clips = np.stack([p.clip(frames[s: s + p.frames]) for s in (0, 4, 8)])
    out = backend.run(clips)
    bias = out["logits"] - out["cam"].mean(axis=(2, 3, 4))
    np.testing.assert_allclose(bias, np.broadcast_to(bias[0], bias.shape), atol=1e-4)
    assert out["activation"].shape == (3, *out["cam"].shape[2:]) and (out["activation"] >= 0).all()
    maps = explain_video(a_video(exported), info, backend, [0])
    w = maps[0]
    np.testing.assert_array_equal(w.frames, frames[: p.frames])
    np.testing.assert_allclose(w.motion, motion_attention(frames[: p.frames], p.frames, 1, p.frames))
    assert w.label in info.classes and w.cam.shape == w.activation.shape == (p.frames, p.crop, p.crop)
    assert mass_inside(np.ones((4, 4)), np.eye(4, dtype=bool)) == pytest.approx(0.25)


def test_explain_cli_writes_the_grid_and_video_without_torch(exported, tmp_path):
    """Torch hidden: the PNG has two rows per window and four panels (frame, activation, CAM, motion);
    the video has every frame of the chosen windows."""
    code = "import sys; sys.modules['torch'] = None\nfrom prp_deploy.cli import main; main()"
    png, mp4 = tmp_path / "grid.png", tmp_path / "maps.mp4"
    r = subprocess.run([sys.executable, "-c", code, "explain", str(a_video(exported)), "--model", str(exported), "--png", str(png),
                        "--out", str(mp4), "--windows", "0,1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("window ") == 2
    grid = cv2.imread(str(png))
    assert grid.shape[:2] == (2 * 2 * PANEL, 4 * PANEL)
    cap = cv2.VideoCapture(str(mp4))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 2 * json.loads((exported / "model.json").read_text())["preprocess"]["frames"]


def test_explain_refuses_what_parity_did_not_pass_and_old_exports(exported, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(exported, folder)
    data = bytearray((folder / "model_explain.onnx").read_bytes())
    data[-100] ^= 0xFF
    (folder / "model_explain.onnx").write_bytes(bytes(data))
    r = subprocess.run([*CLI, "explain", str(a_video(exported)), "--model", str(folder), "--png", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "model_explain.onnx" in r.stderr and "sha256" in r.stderr
    (folder / "model_explain.onnx").unlink()
    with pytest.raises(PRPError, match="re-export"):
        open_explainer(folder)
    r = subprocess.run([*CLI, "explain", str(a_video(exported)), "--model", str(exported)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--out" in r.stderr
    r = subprocess.run([*CLI, "explain", str(a_video(exported)), "--model", str(exported), "--png", str(tmp_path / "y.png"),
                        "--windows", "99"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "windows 0-" in r.stderr
