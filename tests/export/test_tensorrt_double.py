"""The TensorRT paths, driven through a test double of `tensorrt` and `cuda.bindings`
(tests/trt_double: numpy device memory, engines that run their ONNX graph in ONNX Runtime).
Not TensorRT: what TensorRT does on a GPU is checked by scripts/gpu_check.sh. What the double
proves is that every call the project makes exists, is checked, and fails in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from prp_deploy.errors import PRPError
from prp_deploy.export.pipeline import ExportOptions, export
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from tests.conftest import REPO, shared_clips
from tests.export.test_export import int8_data, int8_run, tiny_data  # noqa: F401 - the fixtures
from tests.runs import make_run

DOUBLE = REPO / "tests" / "trt_double"


@pytest.fixture
def trt_double(monkeypatch):
    """`import tensorrt` and `from cuda.bindings import runtime` find the double, for this test only."""
    monkeypatch.syspath_prepend(str(DOUBLE))
    for var in ("TRT_DOUBLE_FAIL", "TRT_DOUBLE_VERSION", "TRT_DOUBLE_CC", "TRT_DOUBLE_GPUS"):
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    for name in [m for m in sys.modules if m == "tensorrt" or m == "cuda" or m.startswith(("tensorrt.", "cuda."))]:
        del sys.modules[name]


def cli(*args, env=None):
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DOUBLE), str(REPO)]), **(env or {})}
    for var in ("TRT_DOUBLE_FAIL", "TRT_DOUBLE_VERSION", "TRT_DOUBLE_CC", "TRT_DOUBLE_GPUS"):
        if env is None or var not in env:
            full.pop(var, None)
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True, timeout=600, env=full)


@pytest.fixture(scope="module")
def engines(int8_data, tmp_path_factory):  # noqa: F811
    """A run exported with --trt --int8 through the double (profile 2:4:8), once for the module, in
    a subprocess: the double never enters this process's modules outside the tests that ask. The
    INT8 engine is built even where its source fails the held-back judge (a model trained for
    seconds often does), so that the engine paths are driven."""
    root = tmp_path_factory.mktemp("trt")
    run = int8_run(root / "run", int8_data)
    r = cli("export", str(run), "--trt", "--int8", "--trt-int8-anyway", "--batch", "2:4:8", "--parity-clips", "12")
    return run, r


def test_export_trt_int8_builds_both_engines_and_parity_judges_them(engines):
    run, r = engines
    out = run / "export"
    assert "Traceback" not in r.stderr and r.returncode in (0, 1), r.stderr  # 1: a 2-step model may fail INT8 parity, loudly
    report = json.loads((out / "parity.json").read_text())
    assert report["not_built"] == {} and "tensorrt_skipped" not in report and "declined" not in report
    anyway = "export: building model_int8.plan anyway (--trt-int8-anyway): its source model_int8_symmetric.onnx fails the held-back judge"
    assert (anyway in r.stderr) == (not report["build"]["onnxruntime-int8-symmetric"]["passed_held_back"]), r.stderr
    for plan in ("model.plan", "model_int8.plan"):
        assert (out / plan).exists() and json.loads((out / f"{plan}.json").read_text())["batch"] == {"min": 2, "opt": 4, "max": 8}
        judged = {c["output"] for c in report["checks"] if c["artifact"] == plan and c["inputs"] == "real"}
        assert judged == {"logits", "features"}, (plan, judged)
        assert report["sha256"][plan]
    assert "video_top1" in {c["output"] for c in report["checks"] if c["artifact"] == "model_int8.plan"}
    # The double runs an engine's source graph: its parity is its source's, number for number.
    stats = {(c["artifact"], c["output"]): c["stats"] for c in report["checks"] if c["inputs"] == "real"}
    assert stats[("model.plan", "features")]["max_abs"] == stats[("model_fp16.onnx", "features")]["max_abs"]
    assert stats[("model_int8.plan", "logits")]["max_abs"] == stats[("model_int8_symmetric.onnx", "logits")]["max_abs"]
    assert (r.returncode == 0) == report["passed"]


def test_the_tensorrt_int8_source_is_signed_and_symmetric_everywhere(engines):
    run, _ = engines
    for name, signed in (("model_int8_symmetric.onnx", True), ("model_int8.onnx", False)):
        g = onnx.load(str(run / "export" / name))
        inits = {i.name: i for i in g.graph.initializer}
        qdq = [n for n in g.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert qdq
        zero_points = [inits[n.input[2]] for n in qdq if len(n.input) > 2 and n.input[2]]
        types = {onnx.TensorProto.DataType.Name(z.data_type) for z in zero_points}
        if signed:  # what TensorRT's explicit quantisation takes: INT8, zero point 0, no INT32 bias
            assert types == {"INT8"} and all(not numpy_helper.to_array(z).any() for z in zero_points), types
        else:  # ONNX Runtime's CPU row keeps UINT8 activations (faster there) and is never TensorRT's source
            assert "UINT8" in types


def test_the_parser_double_refuses_what_tensorrt_refuses(engines, trt_double):
    from prp_deploy.export.tensorrt_build import build_engine

    run, _ = engines
    with pytest.raises(PRPError, match="TensorRT's ONNX parser failed: .*only signed INT8"):
        build_engine(run / "export" / "model_int8.onnx", run / "x.plan", (1, 2, 4), (3, 8, 32, 32))
    assert not (run / "x.plan").exists()


def test_the_engine_runs_every_batch_size_of_its_profile(engines, trt_double):
    from prp_deploy.runtime.backends import TensorRTBackend

    run, _ = engines
    engine = TensorRTBackend(run / "export" / "model.plan")
    reference = OnnxRuntimeBackend(run / "export" / "model_fp16.onnx")
    assert (engine.min_batch, engine.max_batch) == (2, 8) and engine.clip_shape == (3, 8, 32, 32)
    x = np.random.default_rng(0).random((9, 3, 8, 32, 32), dtype=np.float32)
    for n in (1, 2, 3, 8):  # under the minimum (padded), the minimum, between, the maximum
        # Under the minimum the engine runs a batch padded with copies of the last clip and
        # returns the first n rows: what ONNX Runtime gives for that padded batch, exactly.
        padded = np.concatenate([x[:n], np.repeat(x[n - 1 : n], max(0, 2 - n), axis=0)])
        got, want = engine.run(x[:n]), {k: v[:n] for k, v in reference.run(padded).items()}
        assert got.keys() == want.keys() and all(got[k].shape == want[k].shape and np.array_equal(got[k], want[k]) for k in got), n
    with pytest.raises(PRPError, match="takes 1 to 8 clips"):
        engine.run(x)  # over the maximum
    with pytest.raises(PRPError, match="takes 1 to 8 clips"):
        engine.run(x[:0])


def test_a_build_failure_is_said_recorded_and_exits_1(tiny_data, tmp_path):  # noqa: F811
    run = make_run(tmp_path / "run", tiny_data, "r3d")
    r = cli("export", str(run), "--trt", "--parity-clips", "12", env={"TRT_DOUBLE_FAIL": "build_serialized_network"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "export: model.plan not built" in r.stderr and r.stderr.strip().splitlines()[-1].startswith("error: model.plan not built")
    report = json.loads((run / "export" / "parity.json").read_text())
    assert "could not build" in report["not_built"]["model.plan"] and report["artifacts"]["model_fp16.onnx"]
    r = cli("export", str(run), "--trt", "--parity-clips", "12", env={"TRT_DOUBLE_GPUS": "0"})  # no GPU: exit 2, say what to do
    assert r.returncode == 2 and "no CUDA GPU is visible" in r.stderr.splitlines()[-1], r.stderr


def test_auto_falls_back_when_a_cuda_call_fails_and_a_named_backend_says_why(engines, tmp_path):
    run, _ = engines
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    for fail in ("cudaMalloc", "cudaMemcpyAsync", "execute_async_v3"):
        r = cli("run", str(video), "--model", str(run / "export"), "--out", str(tmp_path / f"{fail}.jsonl"), env={"TRT_DOUBLE_FAIL": fail})
        assert r.returncode == 0 and "running fp32 model.onnx on onnxruntime" in r.stderr, (fail, r.stderr)
    r = cli("run", str(video), "--model", str(run / "export"), "--out", str(tmp_path / "trt.jsonl"))
    assert r.returncode == 0 and "running fp16 model.plan on tensorrt" in r.stderr, r.stderr
    r = cli("run", str(video), "--model", str(run / "export"), "--backend", "tensorrt", env={"TRT_DOUBLE_FAIL": "cudaMalloc"})
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == "error: CUDA error 2 in cudaMalloc (no usable GPU here?)", r.stderr


@pytest.mark.parametrize("env,message", [
    ({"TRT_DOUBLE_VERSION": "10.13.0"}, "built by TensorRT 11.1.0, this is TensorRT 10.13.0; rebuild it here"),
    ({"TRT_DOUBLE_CC": "8.6"}, "built for GPU compute capability 9.0 (Test double GPU (not a GPU)), this GPU is 8.6"),
])
def test_a_plan_of_another_tensorrt_or_gpu_is_refused_in_one_line(env, message, engines):
    run, _ = engines
    video = shared_clips("ucf101") / "v_BaseballPitch_g03_c01.avi"
    r = cli("run", str(video), "--model", str(run / "export" / "model.plan"), env=env)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_smaller_failures_are_one_line_errors(engines, trt_double, tmp_path):
    import shutil

    from prp_deploy.export.tensorrt_build import build_engine
    from prp_deploy.runtime.backends import TensorRTBackend

    run, _ = engines
    plan = tmp_path / "model.plan"
    shutil.copy(run / "export" / "model.plan", plan)
    (tmp_path / "model.plan.json").write_text("{not json")
    with pytest.raises(PRPError, match="model.plan.json: unreadable"):
        TensorRTBackend(plan)
    (tmp_path / "model.plan.json").unlink()
    for call, message in (("create_execution_context", "could not create an execution context"),
                          ("set_tensor_address", "refused the device address"), ("deserialize_cuda_engine", "could not deserialize")):
        trt_double.setenv("TRT_DOUBLE_FAIL", call)
        with pytest.raises(PRPError, match=message):
            TensorRTBackend(plan)
    trt_double.setenv("TRT_DOUBLE_FAIL", "create_timing_cache")  # no timing cache from TensorRT: build without one
    facts = build_engine(run / "export" / "model_fp16.onnx", tmp_path / "a.plan", (1, 2, 4), (3, 8, 32, 32), timing_cache=tmp_path / "t.cache")
    assert facts["batch"]["max"] == 4 and (tmp_path / "a.plan").exists() and not (tmp_path / "t.cache").exists()
    trt_double.setenv("TRT_DOUBLE_FAIL", "add_optimization_profile")
    with pytest.raises(PRPError, match="refused the optimisation profile"):
        build_engine(run / "export" / "model_fp16.onnx", tmp_path / "b.plan", (1, 2, 4), (3, 8, 32, 32))
    trt_double.delenv("TRT_DOUBLE_FAIL")
    (tmp_path / "t.cache").write_bytes(b"a cache of another GPU")  # unreadable: replaced by a new one
    build_engine(run / "export" / "model_fp16.onnx", tmp_path / "c.plan", (1, 2, 4), (3, 8, 32, 32), timing_cache=tmp_path / "t.cache")
    assert (tmp_path / "t.cache").read_bytes().startswith(b"PRP-TRT-DOUBLE-CACHE")


def test_an_int8_engine_whose_source_fails_the_held_back_judge_is_declined_and_fp16_serves(engines, trt_double, tmp_path):
    """The trained model broken for INT8 (test_export's _break_for_int8), exported --trt --int8:
    both INT8 graphs really fail the held-back judge. TensorRT's INT8 engine is declined in one
    line (no plan, its source's checks inform only), the FP16 engine is built and served, and the
    export fails for ONNX Runtime's INT8 graph alone, which the runtime could serve."""
    import shutil

    from prp_deploy.rundir import load_checkpoint, save_checkpoint
    from prp_deploy.runtime.backends import TensorRTBackend, open_backend
    from tests.export.test_export import _break_for_int8

    trained, _ = engines
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("export"))
    state = load_checkpoint(run / "finetune" / "best.pt")
    _break_for_int8(state)
    save_checkpoint(state, run / "finetune" / "best.pt")
    r = cli("export", str(run), "--trt", "--int8", "--int8-engine", "ort", "--batch", "2:4:8", "--parity-clips", "12")
    out = run / "export"
    said = "model_int8.plan not built: its source model_int8_symmetric.onnx fails the held-back judge ("
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"export: {said}" in r.stderr and said in r.stdout and "TensorRT serves model.plan (FP16) instead" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: parity FAILED for model_int8.onnx;"), r.stderr
    report = json.loads((out / "parity.json").read_text())
    assert list(report["declined"]) == ["model_int8.plan"] and report["not_built"] == {} and not (out / "model_int8.plan").exists()
    assert report["artifacts"]["model.plan"] is True and report["artifacts"]["model_int8.onnx"] is False
    symmetric = [c for c in report["checks"] if c["artifact"] == "model_int8_symmetric.onnx"]
    assert {c["output"] for c in symmetric} >= {"logits", "video_top1"} and not any(c["gating"] for c in symmetric)
    assert not report["build"]["onnxruntime-int8-symmetric"]["passed_held_back"]
    # The runtime: auto serves the FP16 engine; asking for the INT8 engine says why there is none.
    assert isinstance(open_backend(out), TensorRTBackend) and open_backend(out).precision == "fp16"
    with pytest.raises(PRPError, match="no tensorrt int8 model .*the export did not build model_int8.plan: its source .* fails the held-back judge"):
        open_backend(out, "tensorrt", "int8")
    # Re-checked later, what was declined stays declined: the symmetric graph still informs only.
    r = cli("export", str(run), "--verify-only", "--parity-clips", "12")
    report = json.loads((out / "parity.json").read_text())
    assert report["declined"] == {"model_int8.plan": report["declined"]["model_int8.plan"]} and r.returncode == 1, r.stderr
    assert not any(c["gating"] for c in report["checks"] if c["artifact"] == "model_int8_symmetric.onnx")
