"""Models for the runtime tests: a real export made by the training code path, and a
hand-written ONNX model whose answer is known (for checking scheduling and segments)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest


LEVELS = {"dark": 30, "mid": 130, "bright": 230}  # grey levels of the brightness model's classes


@pytest.fixture(scope="session")
def cpp_demo(tmp_path_factory) -> Path:
    """examples/cpp built once (OpenCV DNN demo): its prp_demo. CI must have the toolchain."""
    have = shutil.which("cmake") and shutil.which("g++") and any(
        Path(p).exists() for p in ("/usr/include/opencv4/opencv2/dnn.hpp", "/usr/local/include/opencv4/opencv2/dnn.hpp"))
    have = have and any(Path(p).exists() for p in ("/usr/include/openssl/evp.h", "/usr/local/include/openssl/evp.h"))
    if not have:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must build the C++ example: .ci/run installs cmake, g++, libopencv-dev and libssl-dev")
        pytest.skip("cmake, g++, OpenCV's C++ headers (libopencv-dev) or OpenSSL's (libssl-dev) missing")
    repo = Path(__file__).resolve().parents[2]
    build = tmp_path_factory.mktemp("cpp") / "build"
    subprocess.run(["cmake", "-S", str(repo / "examples" / "cpp"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    return build / "prp_demo"


@pytest.fixture(scope="session")
def brightness_model(tmp_path_factory):
    """An export folder whose ONNX graph labels a clip by its mean grey level: "dark", "mid" or
    "bright" (logits −40·(mean − level)²). Run by ONNX Runtime like any export; what it should
    say about a video is known from the video's pixels."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    levels = np.array([v / 255 for v in LEVELS.values()], np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["clip"], ["mean"], axes=[1, 2, 3, 4], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "one"], ["features"]),
        helper.make_node("Sub", ["features", "levels"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("Mul", ["sq", "minus_k"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "brightness",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["batch", 3, 8, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]), helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(levels[None], "levels"), numpy_helper.from_array(np.array([1], np.int64), "one"),
         numpy_helper.from_array(np.array(-40.0, np.float32), "minus_k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    folder = tmp_path_factory.mktemp("brightness")
    onnx.save(model, str(folder / "model.onnx"))
    meta = {"schema_version": 1, "kind": "recognizer", "classes": list(LEVELS), "input": {"name": "clip", "shape": [-1, 3, 8, 32, 32]},
            "outputs": {"logits": [-1, 3], "features": [-1, 1]}, "train_fps": 25.0,
            "preprocess": {"short_side": 32, "crop": 32, "frames": 8, "sample_rate": 1, "mean": [0, 0, 0], "std": [1, 1, 1],
                           "channel_order": "RGB"}}
    (folder / "model.json").write_text(json.dumps(meta))
    return folder
