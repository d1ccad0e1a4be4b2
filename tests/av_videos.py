"""Tiny test videos encoded by PyAV (its wheel carries x264, libvpx and FFmpeg's MPEG-4), so
the tests make every codec and container they read themselves."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

# codec, options: B-frames and a short GOP, so seeks land mid-file on keyframes with reordering
CODECS = {
    ".mp4": ("libx264", {"bf": "2", "g": "12", "keyint_min": "12", "sc_threshold": "0"}),
    ".avi": ("mpeg4", {"bf": "2", "g": "12"}),
    ".webm": ("libvpx-vp9", {"g": "12", "deadline": "realtime", "cpu-used": "8"}),
    ".ts": ("libx264", {"bf": "2", "g": "12"}),
    ".mkv": ("libx264", {"bf": "2", "g": "12"}),
}


def textured_frame(i: int, width: int, height: int) -> np.ndarray:
    """Frame i: moving lines over fixed noise, so every frame differs from its neighbours."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
    img[:, :, 0] += np.uint8((i * 5) % 200)
    img[(i * 3) % height, :, 1] = 255
    img[:, (i * 7) % width, 2] = 220
    return img


def encode(path: Path, n: int, fps: int = 25, size: tuple[int, int] = (64, 48), times_ms: list[int] | None = None) -> Path:
    """n frames into `path` (codec by suffix); `times_ms` gives each frame's presentation time
    (a variable frame rate) instead of i/fps."""
    codec, options = CODECS[path.suffix]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if times_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(textured_frame(i, *size), format="bgr24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def opencv_frames(path) -> list[np.ndarray]:
    """Every frame as OpenCV's `VideoCapture.read` gives it (BGR): the reference decode."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)
