"""Small pictures of videos for the pages the toolkit writes (`search --html`, report.html):
frames found by seeking (`data.video_file`: a hit at minute 50 costs the frames after the
keyframe before it, not 50 minutes of decoding) and images inlined as base64 data, so a
page needs no other file."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from ..data.video import open_video, read_frames
from ..errors import PRPError


def spread_frames(video: str, n: int, start_s: float | None = None, end_s: float | None = None) -> list[np.ndarray]:
    """n BGR frames spread evenly over [start_s, end_s] (presentation times; the whole video
    without them). Empty when the video cannot be read."""
    try:
        opened = open_video(video)
    except PRPError:
        return []
    if opened is None:  # no timestamps to seek by: OpenCV reads it forward, timed by index / fps
        return _spread_forward(video, n, start_s, end_s)
    with opened as v:
        count = v.frame_count
        if count == 0:
            return []
        a = 0 if start_s is None else min(count - 1, v.index.frame_at(start_s))
        b = count - 1 if end_s is None else min(count - 1, max(a, v.index.frame_until(end_s)))
        try:
            return list(v.read(np.linspace(a, b, n).round().astype(int)))
        except PRPError:
            return []


def _spread_forward(video: str, n: int, start_s: float | None, end_s: float | None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if count <= 0:
        return []
    a = 0 if start_s is None else min(count - 1, int(start_s * fps))
    b = count - 1 if end_s is None else min(count - 1, max(a, int(end_s * fps)))
    try:
        return list(read_frames(video, np.linspace(a, b, n).round().astype(int)))
    except PRPError:
        return []


def image_data(img: np.ndarray, height: int | None = None, ext: str = ".jpg") -> str:
    """An image (scaled to `height` rows, keeping its aspect) as base64 JPEG or PNG data."""
    if height is not None:
        img = cv2.resize(img, (max(1, round(img.shape[1] * height / img.shape[0])), height), interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {ext}")
    return base64.b64encode(data.tobytes()).decode()


__all__ = ["image_data", "spread_frames"]
