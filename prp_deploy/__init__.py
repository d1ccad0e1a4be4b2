"""prp-deploy: PRP self-supervised video training → ONNX / TensorRT export → streaming runtime.

Importing the package imports no torch: the runtime is meant to be embedded with numpy,
OpenCV and an inference engine only.
"""

import os

__version__ = "0.1.0"

# FFmpeg (inside OpenCV) prints a line per damaged packet straight to stderr, dozens for one
# bad file, burying the one line that matters. Both levels are read when OpenCV loads its
# video backend, so they are set before anything imports cv2; the readers report what was
# unreadable themselves, once per file. `prp-deploy --verbose` (or setting these variables)
# brings the raw lines back.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")  # its "could not open" errors: ours say it in one line


def __getattr__(name):
    # Lazy, so `import prp_deploy` stays cheap; the runtime itself imports no torch.
    if name == "Recognizer":
        from .runtime.api import Recognizer

        return Recognizer
    if name == "Segmenter":
        from .runtime.segments import Segmenter

        return Segmenter
    raise AttributeError(f"module 'prp_deploy' has no attribute {name!r}")
