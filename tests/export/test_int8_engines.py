"""The INT8 engines side by side in one process: what one library changes, the others must not see."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from prp_deploy.export.int8_engines import modelopt_quantize, ort_quantize, quantised_nodes


def _small_net(path: Path) -> Path:
    """Conv3d → ReLU → Conv3d → ReLU → pool → Gemm: 16 channels, so ModelOpt quantises the second conv."""
    rng = np.random.default_rng(0)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["clip", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 6),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1] * 6),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="linear", transB=1)]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", 3, 4, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
                              [w("w1", 16, 3, 3, 3, 3), w("b1", 16), w("w2", 16, 16, 3, 3, 3), w("b2", 16), w("w3", 3, 16), w("b3", 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def test_onnx_runtime_quantises_after_modelopt_in_the_same_process(tmp_path):
    """ModelOpt patches ONNX Runtime's calibrators in place and never restores them; unguarded,
    the UINT8 graph `export --trt --int8` builds after the TensorRT one fails with
    "Quantization parameters are not specified for param clip"."""
    pytest.importorskip("modelopt.onnx.quantization")
    net = _small_net(tmp_path / "small.onnx")
    clips = np.random.default_rng(1).standard_normal((8, 3, 4, 8, 8)).astype(np.float32)
    before = quantised_nodes(ort_quantize(net, clips, "minmax", (), "uint8"))
    trt_graph = modelopt_quantize(net, clips)
    assert quantised_nodes(trt_graph)["int8"] >= 1
    after = quantised_nodes(ort_quantize(net, clips, "minmax", (), "uint8"))
    assert after == before and after["int8"] == 3
