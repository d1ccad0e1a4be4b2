"""The one preprocessing definition shared by training's evaluation, export and runtime.

Torch-free on purpose (numpy + OpenCV only): the runtime imports this module, and export
writes `Preprocess.to_dict()` into the model's metadata so nothing downstream re-derives
or guesses it.

The rule, everywhere: decode → BGR→RGB → resize so the short side is `short_side` and the
long side round(short_side × aspect), area-averaged when shrinking and bilinear when
enlarging (320×240 → 171×128, the paper's 128×171)
→ crop `crop`×`crop` (center for evaluation and inference) → float32 in [0, 1] →
optional (x − mean) / std → layout C×T×H×W.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from ..errors import PRPError

SCHEMA_VERSION = 1
RESIZE_RULE = "short side to short_side, long side round(short_side * aspect), area average when shrinking, bilinear when enlarging; then center crop"
KNOWN_KEYS = {"short_side", "crop", "frames", "sample_rate", "mean", "std", "channel_order", "value_scale", "interpolation", "resize_rule",
              "schema_version"}


@dataclass(frozen=True)
class Preprocess:
    short_side: int = 128
    crop: int = 112
    frames: int = 16  # T, frames per clip
    sample_rate: int = 1  # step between the source frames a clip takes
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Fixed facts, written out so a reader in another language need not assume them.
    channel_order: str = field(default="RGB", init=False)
    value_scale: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    interpolation: str = field(default="area-down-bilinear-up", init=False)
    resize_rule: str = field(default=RESIZE_RULE, init=False)

    def __post_init__(self):
        if self.crop > self.short_side:
            raise PRPError(f"crop {self.crop} is larger than the resized short side {self.short_side}")
        if self.frames < 1 or self.sample_rate < 1 or self.crop < 1:
            raise PRPError(f"frames, sample_rate and crop must be >= 1, got {self.frames}, {self.sample_rate}, {self.crop}")
        if any(s <= 0 for s in self.std):
            raise PRPError(f"std must be positive, got {self.std}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"], d["value_scale"] = list(self.mean), list(self.std), list(self.value_scale)
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        if not isinstance(d, dict):
            raise PRPError(f"preprocessing must be a mapping, got {d!r}")
        unknown = sorted(set(d) - KNOWN_KEYS)
        if unknown:
            raise PRPError(f"preprocessing: unknown key {unknown[0]!r} (known: {', '.join(sorted(KNOWN_KEYS))})")
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise PRPError(f"preprocessing schema_version {version} is not supported (expected {SCHEMA_VERSION})")
        if d.get("channel_order", "RGB") != "RGB" or list(d.get("value_scale", [0.0, 1.0])) != [0.0, 1.0]:
            raise PRPError(f"unsupported preprocessing: channel_order={d.get('channel_order')} value_scale={d.get('value_scale')}")
        try:
            return cls(
                short_side=int(d["short_side"]),
                crop=int(d["crop"]),
                frames=int(d["frames"]),
                sample_rate=int(d.get("sample_rate", 1)),
                mean=tuple(float(x) for x in d.get("mean", (0, 0, 0))),
                std=tuple(float(x) for x in d.get("std", (1, 1, 1))),
            )
        except KeyError as e:
            raise PRPError(f"preprocessing metadata lacks the key {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise PRPError(f"preprocessing: a value has the wrong type ({e})") from None

    def frame(self, bgr: np.ndarray) -> np.ndarray:
        """One decoded BGR frame (H, W, 3) uint8 → resized, centre-cropped RGB uint8 (crop, crop, 3)."""
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise PRPError(f"frames must be HxWx3 uint8 BGR images, got {bgr.dtype} {bgr.shape}")
        rgb = resize_rgb(bgr, self.short_side)
        y, x = center_crop_offsets(rgb.shape[0], rgb.shape[1], self.crop)
        return np.ascontiguousarray(rgb[y : y + self.crop, x : x + self.crop])

    def clip(self, frames_rgb: np.ndarray) -> np.ndarray:
        """Resized RGB frames (T, H, W, 3) uint8 → the model input (3, T, crop, crop) float32:
        centre crop (nothing to do for frames that `frame` made), scale, normalise.

        The one frames → model input step: training's evaluation, export's parity clips, the
        runtime's windows and `Recognizer` all call it.
        """
        y, x = center_crop_offsets(frames_rgb.shape[1], frames_rgb.shape[2], self.crop)
        return to_input(crop_frames(frames_rgb, y, x, self.crop), self.mean, self.std)


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) after scaling the short side to `short_side`, long side rounded half up."""
    if width <= 0 or height <= 0:
        raise PRPError(f"frame size must be positive, got {width}x{height}")
    if height <= width:
        return int(math.floor(short_side * width / height + 0.5)), short_side
    return short_side, int(math.floor(short_side * height / width + 0.5))


def resize_rgb(frame_bgr: np.ndarray, short_side: int) -> np.ndarray:
    """One decoded BGR frame (H, W, 3) uint8 → RGB resized by the rule, uint8.

    Shrinking averages areas (INTER_AREA): bilinear samples only the 2×2 pixels nearest each
    output pixel, so a 3× or larger shrink point-samples rows and a 1-pixel motion turns
    into jerky steps. Enlarging is bilinear.
    """
    h, w = frame_bgr.shape[:2]
    size = resized_size(w, h, short_side)
    if size != (w, h):
        frame_bgr = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


def center_crop_offsets(height: int, width: int, crop: int) -> tuple[int, int]:
    """Top-left (y, x) of the centred crop; floor division, as torchvision's center crop of even slack."""
    if crop > height or crop > width:
        raise PRPError(f"crop {crop} does not fit frames of {width}x{height}")
    return (height - crop) // 2, (width - crop) // 2


def random_crop_offsets(height: int, width: int, crop: int, rng: np.random.Generator) -> tuple[int, int]:
    if crop > height or crop > width:
        raise PRPError(f"crop {crop} does not fit frames of {width}x{height}")
    return int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))


def crop_frames(frames: np.ndarray, y: int, x: int, crop: int) -> np.ndarray:
    """(N, H, W, 3) → (N, crop, crop, 3), a view."""
    return frames[:, y : y + crop, x : x + crop]


def to_input(frames_rgb: np.ndarray, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB → float32 (3, T, H, W) in [0, 1], then (x − mean) / std."""
    x = frames_rgb.astype(np.float32) * np.float32(1.0 / 255.0)  # (T, H, W, 3)
    if any(m != 0.0 for m in mean) or any(s != 1.0 for s in std):
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2))  # (3, T, H, W)
