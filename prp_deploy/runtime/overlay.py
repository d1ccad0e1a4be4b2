"""The overlay video (`run --overlay`): each source frame with its current top label and score,
the top-k bars, with --explain the model's heat map, and with --segments a timeline of the
segments found so far. Drawing scales with the frame, from a 48×36 clip to 4K."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from ..errors import PRPError


class OverlayWriter:
    """Writes each source frame once a window covering it has a prediction, with that label drawn.

    Text and the timeline scale with the frame: the label is fitted to the frame's width
    (shrunk, then shortened) so it is never cut off, from a 48×36 clip to 4K. The timeline
    spans the whole video when its length is known, else the frames seen so far (a webcam,
    or a file whose container does not say its frame count, as many MPEG-4 files do).
    """

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), fps or 25.0
        self.writer = None
        self.pending: dict[int, np.ndarray] = {}
        self.label = ""
        self.top: list[dict] = []  # the newest window's top-3, drawn as bars under the label
        self.heat: np.ndarray | None = None  # --overlay-explain: the newest window's class activation map (crop space)
        self.crop_box = None  # fn(frame h, w) → (x0, y0, side): where the model's centre crop lies in the frame
        self.written = 0
        self.timeline = False  # draw the segments bar (with --segments)
        self.total_frames: int | None = None  # the timeline's scale when the length is known
        self.seen = 0  # frames added so far: the scale when it is not
        self.segments: list[tuple[int, int, str]] = []  # (start frame, end frame, label) found so far

    def add(self, index: int, frame: np.ndarray) -> None:
        self.pending[index] = frame
        self.seen = max(self.seen, index + 1)

    def update(self, top: list[dict], upto: int, heat: np.ndarray | None = None) -> None:
        """Frames before `upto` get the newest window's label, its top-3 bars (and heat map), and are written."""
        self.label = f"{top[0]['label']} {top[0]['score']:.2f}"
        self.top, self.heat = top[:3], heat
        self._flush(upto)

    def _flush(self, upto: int) -> None:
        for i in sorted(k for k in self.pending if k < upto):
            frame = self.pending.pop(i).copy()
            if self.writer is None:
                h, w = frame.shape[:2]
                self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self.writer.isOpened():
                    raise PRPError(f"{self.path}: OpenCV cannot write an mp4v video here")
            bar = timeline_height(frame.shape[0]) if self.timeline else 0
            if self.heat is not None and self.crop_box is not None:
                blend_heat(frame, self.heat, self.crop_box(*frame.shape[:2]))
            if self.label:
                box = draw_label(frame, self.label, bottom_reserved=bar)
                if len(self.top) > 1:
                    draw_top_bars(frame, self.top, box[3], bottom_reserved=bar)
            if self.timeline:
                self._timeline(frame, i, bar)
            self.writer.write(frame)
            self.written += 1

    def _timeline(self, frame: np.ndarray, index: int, bar: int) -> None:
        """A bar along the bottom: the video, its segments so far in their class's colour, a cursor now."""
        h, w = frame.shape[:2]
        top = h - bar
        length = max(self.total_frames or 0, self.seen, index + 1)
        scale = w / length
        # A grey track, not just a darkened strip: many videos (UCF101's among them) have black
        # letterbox rows exactly here, where darkening alone would leave nothing to see.
        frame[top:, :] = (frame[top:, :] * 0.3 + 70).astype(np.uint8)
        for start, end, label in self.segments:
            x0 = min(w - 1, int(start * scale))
            cv2.rectangle(frame, (x0, top), (max(x0, min(w - 1, int(end * scale) - 1)), h - 1), label_colour(label), -1)
        x = min(w - 1, int(index * scale))
        cv2.line(frame, (x, top), (x, h - 1), (255, 255, 255), max(2, w // 160))  # 1 px would not survive a video codec

    def close(self) -> None:
        self._flush(1 << 62)
        if self.writer is not None:
            self.writer.release()


def draw_top_bars(frame: np.ndarray, top: list[dict], y: int, bottom_reserved: int = 0) -> list[tuple[int, int, int, int]]:
    """Under the label: a bar per class of the window's top-3, its length the score, its name on it,
    in the class's timeline colour. Returns the bars' boxes (x0, y0, x1, y1) at full score."""
    h, w = frame.shape[:2]
    margin = max(1, min(w, h) // 40)
    height = max(3, (h - bottom_reserved) // 14)
    full = max(4, w // 3)
    boxes = []
    for k, t in enumerate(top[:3]):
        y0 = y + margin + k * (height + max(1, margin // 2))
        if y0 + height >= h - bottom_reserved:
            break  # a frame too small for more bars keeps those that fit
        x1 = margin + max(1, int(round(full * float(t["score"]))))
        frame[y0:y0 + height, margin:margin + full] = (frame[y0:y0 + height, margin:margin + full] * 0.4).astype(np.uint8)
        cv2.rectangle(frame, (margin, y0), (x1, y0 + height - 1), label_colour(t["label"]), -1)
        scale = max(0.2, height / 30)
        if height >= 8:
            cv2.putText(frame, f"{t['label']} {t['score']:.2f}", (margin + 2, y0 + height - max(1, height // 5)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
        boxes.append((margin, y0, margin + full, y0 + height))
    return boxes


def blend_heat(frame: np.ndarray, heat: np.ndarray, box: tuple[int, int, int]) -> None:
    """The class activation map (T', H', W', in the model's crop) averaged over time, min-max scaled,
    as a JET heat map over the part of the frame the model saw."""
    x0, y0, side = box
    m = heat.mean(0) if heat.ndim == 3 else heat
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
    colour = cv2.applyColorMap(cv2.resize((m * 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_JET)
    region = frame[y0:y0 + side, x0:x0 + side]
    region[:] = cv2.addWeighted(region, 0.55, colour[: region.shape[0], : region.shape[1]], 0.45, 0)


def crop_box_of(short_side: int, crop: int):
    """fn(h, w) → (x0, y0, side): the model's centre crop in original frame coordinates."""
    def box(h: int, w: int) -> tuple[int, int, int]:
        side = max(1, int(round(crop * min(h, w) / short_side)))
        return (w - side) // 2, (h - side) // 2, min(side, h, w)

    return box


def timeline_height(frame_height: int) -> int:
    """The segments bar: a twentieth of the frame, at least 3 rows."""
    return max(3, frame_height // 20)


def draw_label(frame: np.ndarray, text: str, bottom_reserved: int = 0) -> tuple[int, int, int, int]:
    """White text with a dark outline in the top-left corner, fitted to the frame: the size
    follows the frame's height, shrinks to fit its width, and a label that still does not
    fit loses letters before its score. Returns the text's box (x0, y0, x1, y1)."""
    h, w = frame.shape[:2]
    text, scale, thickness, margin, (tw, th, base) = _fit_label(text, w, h, bottom_reserved)
    org = (margin, margin + th)
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return margin, margin, margin + tw, margin + th + base


@functools.lru_cache(maxsize=256)
def _fit_label(text: str, w: int, h: int, bottom_reserved: int):
    """(text as drawn, font scale, thickness, margin, (width, height, baseline)): the same for
    every frame until the label changes, so it is worked out once, not per frame."""
    margin = max(1, min(w, h) // 40)
    scale = max(0.3, h / 480) * 0.7
    thickness = max(1, round(scale * 1.5))

    def size(t: str, sc: float) -> tuple[int, int, int]:
        (tw, th), base = cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, sc, thickness + 2)
        return tw, th, base

    tw, th, base = size(text, scale)
    room_w, room_h = w - 2 * margin, max(1, (h - bottom_reserved) // 3)
    if tw > room_w or th + base > room_h:
        scale *= min(room_w / max(tw, 1), room_h / max(th + base, 1))
        scale = max(scale, 0.2)  # Hershey glyphs below this are dots
        tw, th, base = size(text, scale)
    label, _, score = text.rpartition(" ")
    while tw > room_w and len(label) > 1:  # still too wide: shorten the label, keep the score
        label = label[:-1]
        text = f"{label}. {score}"
        tw, th, base = size(text, scale)
    return text, scale, thickness, margin, (tw, th, base)


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable, bright BGR colour per label."""
    hue = (sum(ord(c) * 31**i for i, c in enumerate(label)) % 180)
    return tuple(int(v) for v in cv2.cvtColor(np.array([[[hue, 200, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0])
