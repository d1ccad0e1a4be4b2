"""prp-deploy: PRP self-supervised video training → ONNX / TensorRT export → streaming runtime.

Importing the package imports no torch: the runtime is meant to be embedded with numpy,
OpenCV and an inference engine only.
"""

__version__ = "0.1.0"
