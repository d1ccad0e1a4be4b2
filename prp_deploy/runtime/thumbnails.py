"""Small pictures of videos for the pages the toolkit writes (`search --html`, report.html):
frames read sequentially (seeking is not trusted, see data/video.py) and images inlined as
base64 data, so a page needs no other file."""

from __future__ import annotations

import base64

import cv2
import numpy as np


def read_frames_until(video: str, end_s: float | None = None) -> tuple[list[np.ndarray], float]:
    """(BGR frames from the start up to `end_s` seconds, or all; fps). Empty when it cannot be read."""
    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    if not cap.isOpened():
        return frames, 0.0
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
            if end_s is not None and len(frames) / fps > end_s:
                break
    finally:
        cap.release()
    return frames, fps


def image_data(img: np.ndarray, height: int | None = None, ext: str = ".jpg") -> str:
    """An image (scaled to `height` rows, keeping its aspect) as base64 JPEG or PNG data."""
    if height is not None:
        img = cv2.resize(img, (max(1, round(img.shape[1] * height / img.shape[0])), height), interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {ext}")
    return base64.b64encode(data.tobytes()).decode()


__all__ = ["image_data", "read_frames_until"]
