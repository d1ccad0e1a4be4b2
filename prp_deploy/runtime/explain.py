"""`prp-deploy explain`: where the model looks, beside where the clip moves (the paper's Fig. 6).

Per window of a video: the activation map of the last conv stage (conv5's channel-mean
magnitude), for a recognizer the class activation map of the predicted class, and the
paper's motion-attention map M of the same clip, each upsampled over the window's frames
and blended as a heat map over what the model sees (the centre crop). Torch-free: the maps
are outputs of the export's `model_explain.onnx`, which parity checked like every artefact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..data.sampling import motion_attention
from ..data.video import open_video, probe, read_frames
from ..errors import PRPError, UsageError
from .artifacts import ARTIFACTS, EXPLAIN_ROW
from .backends import open_artifact
from .model_info import ModelInfo, read_model_info
from .stream import softmax

PANEL = 128  # pixels a panel's side is drawn at (the crop is small at the tiny preset)
DEFAULT_WINDOWS = 4


@dataclass
class WindowMaps:
    """One window's maps at the model's input size, (T, crop, crop) float32 each."""
    window: int
    start_frame: int
    frames: np.ndarray  # (T, crop, crop, 3) RGB uint8: what the model saw
    activation: np.ndarray
    motion: np.ndarray
    cam: np.ndarray | None  # the predicted class's; None for an encoder
    label: str | None
    score: float | None


def open_explainer(model: str | Path, allow_unverified: bool = False, say: Callable[[str], None] = lambda s: None):
    """(ModelInfo, backend of model_explain.onnx) for an export folder."""
    model = Path(model)
    folder = model if model.is_dir() else model.parent
    row = ARTIFACTS[EXPLAIN_ROW]
    if not (folder / row.file).exists():
        raise PRPError(f"{folder}: has no {row.file} (exports before explain existed); re-export it with `prp-deploy export RUN`")
    return read_model_info(folder), open_artifact(folder / row.file, row, "auto", allow_unverified=allow_unverified, say=say)


def window_clips(video: str | Path, info: ModelInfo, chosen: list[int] | None = None, start_s: float | None = None,
                 end_s: float | None = None) -> list[tuple[int, np.ndarray]]:
    """(start frame, the model's view of its frames (T, crop, crop, 3)) for each window to explain:
    only those frames are decoded, each found by a seek (`data.video_file`)."""
    p = info.preprocess
    step = info.sample_rate
    span = (p.frames - 1) * step + 1
    opened = open_video(video)  # None: no timestamps to seek by (OpenCV reads it forward)
    if opened is None and (start_s is not None or end_s is not None):
        raise UsageError(f"{video}: --start/--end need a file that can be sought (its frames carry no timestamps)")
    if opened is None:
        n, first, stop = probe(video).frame_count, 0, None
    else:
        with opened:
            n = opened.frame_count
            first = opened.index.frame_at(start_s) if start_s is not None else 0
            stop = opened.index.frame_at(end_s) if end_s is not None else None
    if n == 0:
        raise PRPError(f"{video}: no frame could be decoded")
    starts = window_starts(n, span, chosen, first, stop)
    indices = [min(start + j * step, n - 1) for start in starts for j in range(p.frames)]
    frames = read_frames(video, indices, p.frame)
    return [(start, frames[i * p.frames:(i + 1) * p.frames]) for i, start in enumerate(starts)]


def window_starts(n_frames: int, span: int, chosen: list[int] | None, first: int = 0, stop: int | None = None) -> list[int]:
    """Starts of the windows to explain: the chosen window numbers (windows tile the video), else
    DEFAULT_WINDOWS spread over it; with a span (frames [first, stop)), only windows inside it."""
    count = max(1, (n_frames - span) // span + 1)
    inside = [w for w in range(count) if w * span >= first and (stop is None or w * span + span <= stop)]
    if not inside:
        raise UsageError(f"--start/--end: frames {first}-{stop} hold no whole window of {span} frames")
    if chosen:
        bad = [w for w in chosen if w not in inside]
        if bad:
            raise UsageError(f"--windows: the video has windows {inside[0]}-{inside[-1]}"
                             f"{' in that span' if first or stop is not None else ''}, not {bad[0]}")
        return [w * span for w in chosen]
    picks = np.unique(np.linspace(0, len(inside) - 1, min(DEFAULT_WINDOWS, len(inside))).round().astype(int))
    return [inside[int(i)] * span for i in picks]


def upsample(maps: np.ndarray, t: int, size: int) -> np.ndarray:
    """(T', H', W') → (t, size, size): linear in time, bilinear in space."""
    src = np.clip((np.arange(t) + 0.5) * maps.shape[0] / t - 0.5, 0, maps.shape[0] - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, maps.shape[0] - 1)
    w = (src - lo)[:, None, None]
    over_time = maps[lo] * (1 - w) + maps[hi] * w
    return np.stack([cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) for m in over_time])


def explain_video(video: str | Path, info: ModelInfo, backend, windows: list[int] | None = None, start_s: float | None = None,
                  end_s: float | None = None) -> list[WindowMaps]:
    p = info.preprocess
    span = (p.frames - 1) * info.sample_rate + 1
    out = []
    for start, picked in window_clips(video, info, windows, start_s, end_s):
        res = backend.run(p.clip(picked)[None])
        act = upsample(res["activation"][0], p.frames, p.crop)
        cam, label, score = None, None, None
        if "cam" in res:
            probs = softmax(res["logits"][0])
            k = int(np.argmax(probs))
            cam, label, score = upsample(res["cam"][0, k], p.frames, p.crop), info.classes[k], float(probs[k])
        motion = motion_attention(picked, p.frames, 1, p.frames)
        out.append(WindowMaps(start // span, start, picked, act, motion, cam, label, score))
    return out


def heat(frame_rgb: np.ndarray, m: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The frame (BGR, PANEL²) with the map blended over it as a JET heat map (lo..hi → blue..red)."""
    norm = np.clip((m - lo) / max(hi - lo, 1e-12), 0, 1)
    colour = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    blend = cv2.addWeighted(base, 0.45, colour, 0.55, 0)
    return cv2.resize(blend, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)


def panels(w: WindowMaps, t: int) -> np.ndarray:
    """Frame t of window w as one row: the frame, activation, CAM (recognizer), motion M. Each map
    is scaled by its own window's range, so a window's frames compare with each other."""
    f = cv2.resize(cv2.cvtColor(w.frames[t], cv2.COLOR_RGB2BGR), (PANEL, PANEL), interpolation=cv2.INTER_NEAREST)
    row = [f, heat(w.frames[t], w.activation[t], float(w.activation.min()), float(w.activation.max()))]
    titles = ["frame", "activation (conv5)"]
    if w.cam is not None:
        row.append(heat(w.frames[t], w.cam[t], float(w.cam.min()), float(w.cam.max())))
        titles.append(f"CAM {w.label} {w.score:.2f}")
    row.append(heat(w.frames[t], w.motion[t], float(w.motion.min()), float(w.motion.max())))
    titles.append("motion M")
    for img, title in zip(row, titles):
        cv2.putText(img, title[:22], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate(row, axis=1)


def write_grid(maps: list[WindowMaps], path: Path, frames_per_window: int = 2) -> None:
    """PNG: a row per (window, frame), frames spread over each window."""
    _write_image(path, grid_image(maps, frames_per_window))


def grid_image(maps: list[WindowMaps], frames_per_window: int = 2) -> np.ndarray:
    """The grid as a BGR image: a row per (window, frame)."""
    rows = []
    for w in maps:
        for t in np.unique(np.linspace(0, len(w.frames) - 1, frames_per_window).round().astype(int)):
            row = panels(w, int(t))
            cv2.putText(row, f"window {w.window} frame {w.start_frame + int(t)}", (3, PANEL - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.32,
                        (255, 255, 255), 1, cv2.LINE_AA)
            rows.append(row)
    return np.concatenate(rows, axis=0)


def write_video(maps: list[WindowMaps], path: Path, fps: float) -> None:
    first = panels(maps[0], 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, (first.shape[1], first.shape[0]))
    if not writer.isOpened():
        raise PRPError(f"{path}: OpenCV cannot write an .mp4 here")
    try:
        for w in maps:
            for t in range(len(w.frames)):
                writer.write(panels(w, t))
    finally:
        writer.release()


def _write_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = cv2.imwrite(str(path), img)
    except cv2.error:
        ok = False
    if not ok:
        raise PRPError(f"{path}: cannot write the image (give a .png or .jpg file)")


def mass_inside(m: np.ndarray, mask: np.ndarray) -> float:
    """The share of a non-negative map's sum that falls inside a boolean mask of the same shape."""
    m = np.maximum(m, 0)
    total = float(m.sum())
    return float(m[mask].sum()) / total if total > 0 else 0.0


__all__ = ["WindowMaps", "explain_video", "grid_image", "mass_inside", "open_explainer", "write_grid", "write_video"]
