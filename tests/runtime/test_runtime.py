"""The runtime on real processes and real files: windows equal evaluation clips, outputs
survive a dying stream, bad input is one line, and the C++ example agrees with Python."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from prp_deploy.data.clips import DecodedFrames
from prp_deploy.data.sampling import clip_indices
from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.errors import PRPError
from prp_deploy.export.pipeline import ExportOptions, export
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from prp_deploy.runtime.model_info import read_model_info
from prp_deploy.runtime.run import RunOptions, stream_records
from prp_deploy.runtime.source_list import parse_source
from prp_deploy.runtime.sources import FrameReader
from prp_deploy.runtime.stream import windows
from tests.conftest import index_frame, shared_clips, write_video
from tests.runs import make_run

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_window_at_f_is_the_evaluation_clip_at_f(exported):
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    info = read_model_info(exported)
    reader = FrameReader(parse_source(str(video)), info.preprocess).start()
    wins = list(windows(iter(reader), info.preprocess.frames, 2, 5, False, reader.fps))
    backend = OnnxRuntimeBackend(exported / "model.onnx")
    n = DecodedFrames(info.preprocess.short_side).num_frames(video)
    for w in (wins[0], wins[7], wins[-1]):
        idx, _ = clip_indices(w.start_frame, info.preprocess.frames, 2, n)
        frames = DecodedFrames(info.preprocess.short_side).read(video, idx)
        ref = info.preprocess.clip(frames)
        np.testing.assert_array_equal(w.tensor(info), ref)  # bit-identical input
        np.testing.assert_allclose(backend.run(w.tensor(info)[None])["logits"], backend.run(ref[None])["logits"], atol=1e-5)
    assert wins[1].start_frame == 5 and wins[0].end_frame == (info.preprocess.frames - 1) * 2 + 1


def test_run_writes_jsonl_features_and_overlay(exported, tmp_path):
    video = shared_clips("ucf101") / "v_Shotput_g05_c02.avi"
    out, feats, ov = tmp_path / "w.jsonl", tmp_path / "f.npy", tmp_path / "o.mp4"
    r = cli("run", str(video), "--model", str(exported), "--out", str(out), "--features", str(feats), "--overlay", str(ov), "--topk", "2")
    assert r.returncode == 0, r.stderr
    records = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(records) > 10 and records[0]["start_frame"] == 0 and records[1]["start_frame"] == 4
    assert {"source", "window", "start_frame", "end_frame", "start_s", "end_s", "top"} <= set(records[0])
    assert len(records[0]["top"]) == 2 and records[0]["top"][0]["score"] >= records[0]["top"][1]["score"]
    assert records[0]["end_s"] == pytest.approx(7 / 25.0)  # the presentation time of its last frame (the 8th)
    f = np.load(feats)
    assert f.shape == (len(records), read_model_info(exported).feature_dim) and f.dtype == np.float32
    index = [json.loads(line) for line in feats.with_suffix(".jsonl").read_text().splitlines()]
    assert len(index) == len(records) and index[3]["start_frame"] == records[3]["start_frame"]
    cap = cv2.VideoCapture(str(ov))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 130
    assert "video:" in r.stderr and "windows/s" in r.stderr and "p95" in r.stderr and "dropped frames 0" in r.stderr


def test_recognizer_api_matches_the_stream(exported):
    import prp_deploy

    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    rec = prp_deploy.Recognizer(exported)
    records = list(rec.stream(str(video), topk=3))
    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(rec.window_frames)]
    top = rec.predict(frames, topk=3)
    assert [t["label"] for t in top] == [t["label"] for t in records[0]["top"]]
    assert top[0]["score"] == pytest.approx(records[0]["top"][0]["score"], abs=1e-5)
    assert rec.features(frames).shape == (read_model_info(exported).feature_dim,)
    short = rec.predict(frames[:3])  # fewer frames are padded by repeating the last
    padded = rec.predict(frames[:3] + [frames[2]] * (rec.window_frames - 3))
    assert [(t["label"], round(t["score"], 5)) for t in short] == [(t["label"], round(t["score"], 5)) for t in padded]
    np.testing.assert_array_equal(rec.clip(frames[:3]), rec.clip(frames[:3] + [frames[2]] * (rec.window_frames - 3)))
    assert not np.array_equal(rec.clip(frames[:3]), rec.clip(frames))  # the padding is really there
    with pytest.raises(PRPError, match="uint8"):
        rec.predict([np.zeros((10, 10), np.float32)])


@pytest.mark.parametrize("n", [1, 5])
def test_short_video_is_padded_and_said_so(n, exported, tmp_path):
    video = write_video(tmp_path / "short.avi", [index_frame(i, 80, 60) for i in range(n)])
    r = cli("run", str(video), "--model", str(exported))
    assert r.returncode == 0, r.stderr
    records = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(records) == 1 and records[0]["padded"] == 8 - n and records[0]["end_frame"] == 8
    assert "shorter than one window" in r.stderr


def test_stream_dying_midway_keeps_outputs_and_fails(exported, tmp_path):
    good = write_video(tmp_path / "long.avi", [index_frame(i % 30, 80, 60) for i in range(200)])
    data = good.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # the container still claims 200 frames
    out = tmp_path / "w.jsonl"
    r = cli("run", str(cut), "--model", str(exported), "--out", str(out), "--batch", "2")
    assert r.returncode == 1 and "corrupt or truncated" in r.stderr and "Traceback" not in r.stderr
    records = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(records) > 5 and all("top" in x for x in records)  # every line written is complete


@pytest.mark.parametrize(
    "args,pattern,code",
    [
        (["missing.mp4"], "no such file", 1),
        (["NOTVIDEO"], "cannot open as a video", 1),
        (["EMPTYVIDEO"], "no frame decodes|cannot open as a video", 1),
        (["7"], "webcam 7: cannot be opened", 1),
        (["rtsp://127.0.0.1:9/none"], "rtsp://127.0.0.1:9/none: connection refused", 1),
        (["VIDEO", "--model", "NOMETA"], "model.json: missing", 1),
        (["VIDEO", "--sample-rate", "zero"], "--sample-rate wants", 2),
    ],
)
def test_bad_input_is_one_line(args, pattern, code, exported, tmp_path):
    (tmp_path / "notvideo.mp4").write_text("hello")
    cv2.VideoWriter(str(tmp_path / "empty.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (80, 60)).release()  # a container with no frame
    (tmp_path / "nometa").mkdir()
    import onnx

    bare = onnx.load(str(exported / "model.onnx"))
    del bare.metadata_props[:]  # an ONNX file with no prp-deploy metadata and no model.json beside it
    onnx.save(bare, str(tmp_path / "nometa" / "model.onnx"))
    video = write_video(tmp_path / "v.avi", [index_frame(i, 80, 60) for i in range(20)])
    subs = {"NOTVIDEO": str(tmp_path / "notvideo.mp4"), "EMPTYVIDEO": str(tmp_path / "empty.avi"), "VIDEO": str(video), "NOMETA": str(tmp_path / "nometa" / "model.onnx")}
    argv = [subs.get(a, a) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(exported)]
    r = cli("run", *argv, cwd=tmp_path)
    assert r.returncode == code, (r.returncode, r.stderr)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]) and "Traceback" not in r.stderr, r.stderr


def test_model_whose_metadata_does_not_match_its_inputs(exported, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["preprocess"]["crop"] = 48  # the graph takes 32
    meta["preprocess"]["short_side"] = 64
    (bad / "model.json").write_text(json.dumps(meta))
    video = write_video(tmp_path / "v.avi", [index_frame(i, 80, 60) for i in range(20)])
    r = cli("run", str(video), "--model", str(bad))
    assert r.returncode == 1 and "does not match" in r.stderr and "Traceback" not in r.stderr


def test_live_source_drops_instead_of_falling_behind(exported, tmp_path):
    """A slow consumer on a live source: frames are dropped and counted, windows keep coming."""
    video = write_video(tmp_path / "v.avi", [index_frame(i % 30, 80, 60) for i in range(300)])
    info = read_model_info(exported)

    class SlowBackend:
        name, outputs, max_batch = "slow", ("logits", "features"), None

        def __init__(self):
            self.inner = OnnxRuntimeBackend(exported / "model.onnx")

        def run(self, x):
            import time

            time.sleep(0.05)
            return self.inner.run(x)

    from prp_deploy.runtime.stream import StreamStats

    stats = StreamStats()
    records = list(stream_records(str(video), info, SlowBackend(), RunOptions(live=True, batch=1), stats))
    assert stats.dropped_frames > 0 and stats.frames == 300
    assert len(records) < 300 // 4  # fewer windows than a file run would make
    starts = [r["start_frame"] for r in records]
    assert starts == sorted(starts)


def test_no_export_says_how_to_make_one(tmp_path):
    video = write_video(tmp_path / "v.avi", [index_frame(i, 80, 60) for i in range(20)])
    r = cli("run", str(video), cwd=tmp_path)
    assert r.returncode == 1 and "prp-deploy export" in r.stderr


@pytest.mark.slow
def test_cpp_example_matches_python_top1(exported, cpp_demo):
    video = shared_clips("ucf101") / "v_Shotput_g05_c02.avi"
    cpp = subprocess.run([str(cpp_demo), str(exported), str(video), "--topk", "3"], capture_output=True, text=True, timeout=300)
    assert cpp.returncode == 0, cpp.stderr
    py = cli("run", str(video), "--model", str(exported), "--task", "recognize", "--topk", "3")
    a = [json.loads(l) for l in cpp.stdout.splitlines()]
    b = [json.loads(l) for l in py.stdout.splitlines()]
    assert len(a) == len(b) > 10
    for x, y in zip(a, b):
        assert (x["start_frame"], x["end_frame"]) == (y["start_frame"], y["end_frame"])
        assert x["top"][0]["label"] == y["top"][0]["label"]
        assert x["top"][0]["score"] == pytest.approx(y["top"][0]["score"], abs=1e-3)


def _cuda_include_dirs() -> list[Path]:
    """The CUDA runtime headers (and their crt/ part) from the nvidia-cuda-*-cu12 wheels of the dev extra."""
    try:
        import nvidia.cuda_nvcc
        import nvidia.cuda_runtime
    except ImportError:
        return []
    return [Path(list(nvidia.cuda_runtime.__path__)[0]) / "include", Path(list(nvidia.cuda_nvcc.__path__)[0]) / "include"]


def test_cpp_tensorrt_backend_compiles_against_tensorrt_11_headers():
    """examples/cpp/src/trt_backend.cpp against TensorRT 11.1's real headers (../shared/third_party):
    a call that does not exist, or a wrong signature, fails here instead of on a user's GPU."""
    headers = REPO.parent / "shared" / "third_party" / "tensorrt-11.1" / "include"
    cuda = _cuda_include_dirs()
    opencv = subprocess.run(["pkg-config", "--cflags", "opencv4"], capture_output=True, text=True) if shutil.which("pkg-config") else None
    missing = [what for what, ok in (("TensorRT headers in ../shared/third_party", headers.is_dir()), ("the CUDA header wheels (dev extra)", bool(cuda)),
                                     ("g++", shutil.which("g++")), ("OpenCV's C++ headers (libopencv-dev)", opencv is not None and opencv.returncode == 0)) if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must compile the C++ TensorRT backend; missing: {', '.join(missing)}")
        pytest.skip(f"missing: {', '.join(missing)}")
    cmd = ["g++", "-std=c++17", "-fsyntax-only", "-Wno-deprecated-declarations", "-I", str(REPO / "examples" / "cpp" / "include"),
           "-I", str(headers), *[f"-I{d}" for d in cuda], *opencv.stdout.split(), str(REPO / "examples" / "cpp" / "src" / "trt_backend.cpp")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("which", ["run", "export"])
def test_torch_backend_agrees_with_onnxruntime(which, exported):
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    model = exported.parent if which == "run" else exported
    t = cli("run", str(video), "--model", str(model), "--backend", "torch", "--task", "recognize")
    o = cli("run", str(video), "--model", str(exported), "--backend", "onnxruntime", "--task", "recognize")
    assert t.returncode == 0 and o.returncode == 0, t.stderr + o.stderr
    a = [json.loads(l) for l in t.stdout.splitlines()]
    b = [json.loads(l) for l in o.stdout.splitlines()]
    assert len(a) == len(b) > 5
    assert all(x["top"][0]["label"] == y["top"][0]["label"] for x, y in zip(a, b))
    assert "on torch" in t.stderr


def test_engine_from_another_tensorrt_or_gpu_is_refused():
    from prp_deploy.runtime.backends import check_engine_compatibility

    facts = {"tensorrt_version": "10.13.0", "compute_capability": "9.0", "gpu": "NVIDIA H100"}
    check_engine_compatibility(facts, "10.13.0", "9.0", Path("m.plan"))
    with pytest.raises(PRPError, match=r"built by TensorRT 10\.13\.0, this is TensorRT 11\.0\.0; rebuild"):
        check_engine_compatibility(facts, "11.0.0", "9.0", Path("m.plan"))
    with pytest.raises(PRPError, match=r"compute capability 9\.0 \(NVIDIA H100\), this GPU is 8\.6"):
        check_engine_compatibility(facts, "10.13.0", "8.6", Path("m.plan"))


def test_truncated_clip_is_a_few_lines_naming_the_file(exported, tmp_path):
    """FFmpeg's per-packet chatter stays out of the user's stderr: the damage is said once."""
    src = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    bad = tmp_path / "truncated.avi"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    r = cli("run", str(bad), "--model", str(exported), "--out", str(tmp_path / "w.jsonl"))
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    # The model line, the summary of what was read (3 lines), the damage once: no decoder chatter.
    assert r.returncode == 1 and len(lines) <= 5 and "Traceback" not in r.stderr, r.stderr
    assert not any(line.startswith("[") for line in lines) and re.search(r"frames \d+, windows \d+", r.stderr), r.stderr
    assert str(bad) in lines[-1] and re.search(r"decoding stopped at frame \d+ of \d+", lines[-1]), r.stderr
    assert (tmp_path / "w.jsonl").read_text().count("\n") > 0  # what was read before the damage is kept


def test_damaged_model_files_are_one_line(exported, tmp_path):
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    bad = tmp_path / "export"
    shutil.copytree(exported, bad)
    (bad / "model.onnx").write_bytes((bad / "model.onnx").read_bytes()[:4000])  # a copy cut short
    r = cli("run", str(video), "--model", str(bad))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "is not the file parity checked" in r.stderr, r.stderr
    (bad / "parity.json").unlink()  # no verdict: refused; run anyway, the load itself must fail in one line
    r = cli("run", str(video), "--model", str(bad))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no parity.json beside it" in r.stderr, r.stderr
    r = cli("run", str(video), "--model", str(bad), "--allow-unverified")
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1 and "onnxruntime cannot load it" in errors[0] and "Traceback" not in r.stderr, r.stderr
    (bad / "model.json").write_text("{not json")
    r = cli("run", str(video), "--model", str(bad))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not valid JSON" in r.stderr, r.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(video, port):
    import socket

    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "stream_server.py"), str(video), str(port), "1024", "0.05"])
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("the test server did not start")


@pytest.mark.slow
def test_stream_that_dies_and_comes_back_carries_on(exported, tmp_path):
    video = write_video(tmp_path / "v.avi", [index_frame(i % 37) for i in range(160)])
    port, out = _free_port(), tmp_path / "w.jsonl"
    server = _serve(video, port)
    url = f"http://127.0.0.1:{port}/v.avi"
    run = subprocess.Popen([sys.executable, "-m", "prp_deploy", "run", url, "--model", str(exported), "--out", str(out),
                            "--reconnect", "6", "--reconnect-wait", "0.3"], stderr=subprocess.PIPE, text=True)
    # Mid-stream by what the run has done, not by a sleep: on a loaded machine its start-up alone
    # can outlast a fixed delay, and the server would die before the first byte was read.
    deadline = time.time() + 60
    while time.time() < deadline and run.poll() is None and not (out.exists() and out.read_text().count("\n") >= 1):
        time.sleep(0.05)
    server.kill()  # mid-stream: the first window is written, the throttled rest still to come
    server.wait()
    time.sleep(1.0)
    server = _serve(video, port)
    try:
        _, err = run.communicate(timeout=180)
    finally:
        server.kill()
    assert run.returncode == 0 and "Traceback" not in err, err
    assert re.search(r"reconnects [1-9]", err), err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["window"] for r in records] == list(range(len(records)))  # numbered on
    starts = [r["start_frame"] for r in records]
    assert starts == sorted(set(starts)) and records[-1]["end_frame"] >= 150  # nothing repeated, the whole video seen


@pytest.mark.slow
def test_stream_gone_for_good_gives_up_in_one_line(exported, tmp_path):
    video = write_video(tmp_path / "v.avi", [index_frame(i % 37) for i in range(160)])
    port, out = _free_port(), tmp_path / "w.jsonl"
    server = _serve(video, port)
    run = subprocess.Popen([sys.executable, "-m", "prp_deploy", "run", f"http://127.0.0.1:{port}/v.avi", "--model", str(exported),
                            "--out", str(out), "--reconnect", "2", "--reconnect-wait", "0.2"], stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    server.kill()
    _, err = run.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert run.returncode == 1 and len(errors) == 1 and "did not come back after 2 reconnects" in errors[0] and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == errors[0]  # the last word, one line
    assert re.search(r"\((\d+) windows written before it\)", errors[0]) and out.read_text().count("\n") > 0  # written before: kept
    assert re.search(r"frames \d+, windows \d+.*; outages 1 \(.* s without frames\), reconnects 0 of 2 attempts", err), err  # the summary too
