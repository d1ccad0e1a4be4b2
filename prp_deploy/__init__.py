"""prp-deploy: PRP self-supervised video training → ONNX / TensorRT export → streaming runtime.

Importing the package imports no torch: the runtime is meant to be embedded with numpy,
OpenCV and an inference engine only.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import prp_deploy` stays cheap; the runtime itself imports no torch.
    if name == "Recognizer":
        from .runtime.api import Recognizer

        return Recognizer
    raise AttributeError(f"module 'prp_deploy' has no attribute {name!r}")
