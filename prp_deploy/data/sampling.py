"""Which frames a sample takes: dilated sampling, slow-down targets, motion attention, test clips.

All pure numpy, all torch-free. Frame indices are rate-1 source frame numbers. A PRP
pretraining sample at playback rate s reads one *span* of consecutive frames (from the
frame cache or the decoder) and derives everything from it, in one crop:

    span   R = frames start .. start + T·s − 1         (T·s frames; +1 when r > s, below)
    input  X(s) = R[0 : T·s : s]                       (T frames, s× fast-forward)
    target G    = R at positions j·s/r, j < T·r        (T·r frames: the input r× slowed down)
    motion M    = U(A(P(D(R))))                        (T·r × crop × crop weights)

Target positions are integers when r ≤ s. When r > s they fall between frames and the
paper interpolates linearly (which needs frame start + T·s, hence the +1); `real` marks
the target frames that exist in the video, for training that leaves the others out of
the loss as the reference code did.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MOTION_LAMBDAS = (0.8, 2.0)


def span_length(clip_len: int, rate: int, rec_rate: int | None = None) -> int:
    """Rate-1 frames a sample at playback rate `rate` reads."""
    return clip_len * rate + (1 if rec_rate is not None and rec_rate > rate else 0)


@dataclass(frozen=True)
class RateChoice:
    rate: int
    label: int  # index of `rate` in the rate set
    start: int
    span: int  # frames read from `start`; those past the video's end repeat its last frame
    adjusted: str | None  # None, "resampled" (drawn rate did not fit) or "padded"


def choose_rate(
    num_frames: int,
    rates: tuple[int, ...],
    clip_len: int,
    rec_rate: int | None,
    rng: np.random.Generator,
    short_videos: str = "resample",
) -> RateChoice:
    """Draw s uniformly from `rates` and a start where the whole span fits.

    A video too short for the drawn s is never swapped for another video (the reference
    did that silently). With `short_videos="resample"` s is redrawn among the rates that
    fit; with "pad", or when none fits, the span starts at 0 and runs past the end by
    repeating the last frame. Either way `adjusted` says so, for the logs' count.
    """
    if num_frames < 1:
        raise ValueError("a video with no frames cannot give a sample")
    if short_videos not in ("resample", "pad"):
        raise ValueError(f"short_videos must be 'resample' or 'pad', got {short_videos!r}")
    label = int(rng.integers(len(rates)))
    span = span_length(clip_len, rates[label], rec_rate)
    adjusted = None
    if span > num_frames:
        fits = [i for i, s in enumerate(rates) if span_length(clip_len, s, rec_rate) <= num_frames]
        if short_videos == "resample" and fits:
            label = fits[int(rng.integers(len(fits)))]
            span = span_length(clip_len, rates[label], rec_rate)
            adjusted = "resampled"
        else:
            return RateChoice(rates[label], label, 0, span, "padded")
    start = int(rng.integers(0, num_frames - span + 1))
    return RateChoice(rates[label], label, start, span, adjusted)


def padded_range(start: int, length: int, num_frames: int) -> np.ndarray:
    """start .. start+length−1, indices past the end repeat the last frame."""
    return np.minimum(np.arange(start, start + length), num_frames - 1)


def target_positions(clip_len: int, rate: int, rec_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the r× slow-down of X(s): (lo, hi, weight, real), each of length T·r, relative to the span.

    Target frame j sits at position j·s/r: frame lo·(1−w) + hi·w, real where w == 0.
    """
    pos = np.arange(clip_len * rec_rate, dtype=np.float64) * rate / rec_rate
    lo = np.floor(pos).astype(np.int64)
    weight = (pos - lo).astype(np.float32)
    hi = lo + (weight > 0)
    return lo, hi, weight, weight == 0


def input_and_target(span_frames: np.ndarray, clip_len: int, rate: int, rec_rate: int | None):
    """From span frames (L, H, W, 3) uint8: input (T, H, W, 3) uint8, target (3, T·r, H, W) float32 in [0, 1], real (T·r,) bool.

    The target is laid out channels-first already: transposing uint8 before the float
    conversion moves 4× fewer bytes.
    """
    clip = span_frames[0 : clip_len * rate : rate]
    if rec_rate is None:
        return clip, None, None
    lo, hi, w, real = target_positions(clip_len, rate, rec_rate)
    target = span_frames[lo].transpose(3, 0, 1, 2).astype(np.float32)  # (3, T·r, H, W)
    frac = np.flatnonzero(~real)
    if frac.size:  # linear interpolation between neighbours, only where the frame does not exist
        wf = w[frac][None, :, None, None]
        upper = span_frames[hi[frac]].transpose(3, 0, 1, 2).astype(np.float32)
        target[:, frac] = target[:, frac] * (1 - wf) + upper * wf
    target *= np.float32(1 / 255)
    return clip, target, real


def motion_pool_geometry(clip_len: int, crop: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(kernel, stride) as (temporal, spatial): the paper's 15×28×28 / 16×7×7 at 16×112×112, scaled."""
    k = max(1, int(round(28 * crop / 112)))
    st = max(1, int(round(7 * crop / 112)))
    return (max(1, clip_len - 1), k), (clip_len, st)


def _box_mean_2d(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Mean over k×k windows with `stride` on the last two axes (valid positions only)."""
    c = np.cumsum(np.cumsum(x, axis=-2, dtype=np.float64), axis=-1)
    c = np.pad(c, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    ys = np.arange(0, x.shape[-2] - k + 1, stride)
    xs = np.arange(0, x.shape[-1] - k + 1, stride)
    y0, x0 = ys[:, None], xs[None, :]
    s = c[..., y0 + k, x0 + k] - c[..., y0, x0 + k] - c[..., y0 + k, x0] + c[..., y0, x0]
    return (s / (k * k)).astype(np.float32)


def _linear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out, in) weights of 1-D linear resampling with align_corners=False (torch's trilinear)."""
    m = np.zeros((out_size, in_size), np.float32)
    src = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0).astype(np.float32)
    m[np.arange(out_size), i0] += 1 - w1
    m[np.arange(out_size), i1] += w1
    return m


def motion_attention(
    span_frames: np.ndarray, clip_len: int, rate: int, out_frames: int, lambdas=MOTION_LAMBDAS
) -> np.ndarray:
    """The paper's M = U(A(P(D(R)))) as float32 (out_frames, H, W).

    R: the T·s rate-1 frames X(s) spans (uint8, already cropped). D_t = Σ_RGB (R_t − R_t+1)²
    on [0, 1] values; P: 3-D average pool, kernel (T−1, k, k) stride (T, st, st) so every
    T-frame chunk gives one map; A: min-max per clip to [λ1, λ2], all ones where the map is
    flat (the paper's formula divides by zero there); U: trilinear, align_corners=False.
    """
    frames = span_frames[: clip_len * rate]
    h, w = frames.shape[1:3]
    if h != w:
        raise ValueError(f"motion attention expects square crops, got {w}x{h}")
    (kt, k), (stt, st) = motion_pool_geometry(clip_len, h)
    # Temporal pooling with kernel T−1 and stride T averages, per T-frame chunk, the T−1
    # squared differences inside it. Accumulate them chunk by chunk in OpenCV (absdiff +
    # accumulateSquare on uint8 rows): ~13× faster than the float32 numpy expression.
    chunks = (frames.shape[0] - 1 - kt) // stt + 1  # = s
    flat = frames.reshape(frames.shape[0], h, w * 3)
    acc = np.zeros((chunks, h, w * 3), np.float32)
    for i in range(chunks):
        for t in range(i * stt, i * stt + kt):
            cv2.accumulateSquare(cv2.absdiff(flat[t + 1], flat[t]), acc[i])
    pooled_t = acc.reshape(chunks, h, w, 3).sum(axis=-1) * np.float32(1 / (255.0 * 255.0 * kt))  # (s, H, W), D on [0, 1] values
    pooled = _box_mean_2d(pooled_t, k, st)  # (s, h', w')
    lo, hi = float(pooled.min()), float(pooled.max())
    l1, l2 = lambdas
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.ones((out_frames, h, w), np.float32)
    a = (l2 - l1) / (hi - lo) * (pooled - lo) + l1
    mt, my, mx = _linear_matrix(out_frames, a.shape[0]), _linear_matrix(h, a.shape[1]), _linear_matrix(w, a.shape[2])
    return np.einsum("ti,yj,xk,ijk->tyx", mt, my, mx, a, optimize=True).astype(np.float32)


def eval_clip_starts(num_frames: int, span: int, num_clips: int = 10) -> list[int]:
    """Starts of `num_clips` clips of `span` frames centred at linspace(span/2, len − span/2).

    Clips of a video shorter than `span` all start at 0 (and are padded by repeating the
    last frame, `padded_range`).
    """
    if num_frames <= span:
        return [0] * num_clips
    if num_clips == 1:  # linspace(a, b, 1) is [a]: the first clip, not the centred one
        centres = np.array([num_frames / 2])
    else:
        centres = np.linspace(span / 2, num_frames - span / 2, num_clips)
    starts = np.floor(centres - span / 2 + 0.5).astype(int)
    return [int(s) for s in np.clip(starts, 0, num_frames - span)]


def clip_indices(start: int, clip_len: int, step: int, num_frames: int) -> tuple[np.ndarray, int]:
    """Source frames start, start+step, ... (clip_len of them); past the end repeat the last frame.

    Returns (indices, how many were padded).
    """
    idx = start + step * np.arange(clip_len)
    padded = int((idx > num_frames - 1).sum())
    return np.minimum(idx, num_frames - 1), padded
