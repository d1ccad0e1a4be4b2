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
from prp_deploy.data.video import iter_frames
from prp_deploy.runtime.explain import PANEL, explain_video, mass_inside, open_explainer
from tests.av_videos import encode

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
    frames = np.stack([info.preprocess.frame(f) for f in iter_frames(a_video(exported))])
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


def test_overlay_draws_the_top3_bars_and_the_heat_map(tmp_path):
    """On a grey 320×240 frame: the top class's bar in its colour up to its score and dark after it,
    and, with a map hot on the right, the crop's right side red and its left side blue."""
    from prp_deploy.runtime.overlay import OverlayWriter, crop_box_of, draw_label, draw_top_bars, label_colour

    w = OverlayWriter(tmp_path / "o.mp4", 25.0)
    w.crop_box = crop_box_of(128, 112)
    w.add(0, np.full((240, 320, 3), 128, np.uint8))
    heat = np.tile(np.linspace(0, 1, 7, dtype=np.float32), (2, 7, 1))  # (T', H', W'): hot on the right
    top = [{"label": "Orbit", "score": 0.7}, {"label": "Shake", "score": 0.2}, {"label": "Grow", "score": 0.1}]
    w.update(top, 1, heat)
    w.close()
    ok, frame = cv2.VideoCapture(str(tmp_path / "o.mp4")).read()
    assert ok
    scratch = np.zeros((240, 320, 3), np.uint8)  # where the bars go, from the drawing functions themselves
    x, y_top, x_full, y_bottom = draw_top_bars(scratch, top, draw_label(scratch, "Orbit 0.70")[3])[0]
    full = x_full - x
    rows = slice(y_bottom - 3, y_bottom - 1)  # under the name written on the bar
    bar = frame[rows, x + int(0.05 * full): x + int(0.65 * full)].reshape(-1, 3).mean(0)
    assert np.abs(bar - label_colour("Orbit")).max() < 60, bar  # the bar, in the class's colour, up to its score (0.7)
    assert frame[rows, x + int(0.75 * full): x + int(0.95 * full)].mean() < 90  # the rest of the track is dark
    x0, y0, side = crop_box_of(128, 112)(240, 320)
    right, left = frame[y0 + side // 2, x0 + side - 5].astype(int), frame[y0 + side - 5, x0 + 5].astype(int)
    assert right[2] > right[0] + 40 and left[0] > left[2] + 40  # BGR: red where the map is hot, blue where cold


def test_run_overlay_explain(exported, tmp_path):
    video = a_video(exported)
    r = subprocess.run([*CLI, "run", str(video), "--model", str(exported), "--overlay-explain", "--out", str(tmp_path / "r.jsonl")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--overlay too" in r.stderr
    r = subprocess.run([*CLI, "run", str(video), "--model", str(exported), "--overlay-explain", "--overlay", str(tmp_path / "o.mp4"),
                        "--out", str(tmp_path / "r.jsonl")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "model_explain.onnx" in r.stderr  # the header names the artefact that ran
    plain = subprocess.run([*CLI, "run", str(video), "--model", str(exported), "--out", str(tmp_path / "p.jsonl")],
                           capture_output=True, text=True, timeout=120)
    assert (tmp_path / "r.jsonl").read_text() == (tmp_path / "p.jsonl").read_text()  # the same labels from either graph
    assert cv2.VideoCapture(str(tmp_path / "o.mp4")).read()[0]


def test_explain_never_writes_over_its_input_or_into_a_folder(exported, tmp_path):
    """--out naming the video itself, a non-image --png, one file for both: usage errors (exit 2), nothing written."""
    video = tmp_path / "clip.mp4"
    shutil.copy(a_video(exported), video)
    before = video.read_bytes()
    for args in (["--out", str(video)], ["--png", str(tmp_path / "dir") + "/"], ["--png", str(tmp_path / "x.mp4")],
                 ["--out", str(tmp_path / "m.mp4"), "--png", str(tmp_path / "m.mp4")]):
        r = subprocess.run([*CLI, "explain", str(video), "--model", str(exported), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert video.read_bytes() == before and not (tmp_path / "m.mp4").exists()


def test_explain_a_span_reads_only_its_windows(exported, tmp_path):
    """--start/--end: the windows explained lie inside the span, and their frames are the file's
    frames there (found by seeking), preprocessed as the runtime does."""
    video = encode(tmp_path / "long.mp4", 300, size=(80, 60))  # 12 s at 25 fps
    info, backend = open_explainer(exported)
    frames = np.stack([info.preprocess.frame(f) for f in iter_frames(video)])
    p, step = info.preprocess, info.sample_rate
    span = (p.frames - 1) * step + 1
    maps = explain_video(video, info, backend, None, start_s=6.0, end_s=9.0)
    assert maps and all(150 <= w.start_frame and w.start_frame + span <= 225 for w in maps)
    for w in maps:
        np.testing.assert_array_equal(w.frames, frames[w.start_frame: w.start_frame + span: step])
    r = subprocess.run([*CLI, "explain", str(video), "--model", str(exported), "--png", str(tmp_path / "g.png"), "--start", "9",
                        "--end", "6"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "must come before --end" in r.stderr and "Traceback" not in r.stderr
