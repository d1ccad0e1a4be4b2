"""Map-style datasets that turn indexed videos into model inputs (numpy only).

They return numpy arrays and plain ints, so torch's DataLoader collates them, runs them in
worker processes, and this package's data layer still imports no torch. Randomness comes
from a generator seeded by (seed, epoch, index): a sample does not depend on which worker
makes it or how many there are, which is what makes `--resume` exact.

A video that cannot be read gives `None` and a warning; `loader.collate_skipping` drops
it and counts it, and training fails once too many were skipped.
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol, Sequence

import numpy as np

from ..errors import VideoError
from .cache import FrameCache
from .datasets import Video
from .preprocess import Preprocess, crop_frames, random_crop_offsets, resize_rgb, to_input
from .sampling import choose_rate, clip_indices, input_and_target, motion_attention, padded_range, eval_clip_starts
from .video import probe, read_frames

log = logging.getLogger(__name__)
ADJUSTED_CODES = {None: 0, "resampled": 1, "padded": 2}


class FrameSource(Protocol):
    def num_frames(self, path) -> int: ...

    def read(self, path, indices) -> np.ndarray: ...  # uint8 RGB (N, H, W, 3), resized


class DecodedFrames:
    """Frames decoded from the video file and resized by the rule (lossless w.r.t. the source)."""

    def __init__(self, short_side: int = 128):
        self.short_side = short_side
        self._transform = functools.partial(resize_rgb, short_side=short_side)

    def num_frames(self, path) -> int:
        return probe(path).frame_count

    def read(self, path, indices) -> np.ndarray:
        return read_frames(path, indices, self._transform)


class CachedFrames:
    """Frames from the frame cache where a video was prepared, else decoded."""

    def __init__(self, cache: FrameCache):
        self.cache = cache
        self.decoded = DecodedFrames(cache.short_side)

    def num_frames(self, path) -> int:
        return self.cache.num_frames(path) if self.cache.has(path) else self.decoded.num_frames(path)

    def read(self, path, indices) -> np.ndarray:
        return self.cache.read(path, indices) if self.cache.has(path) else self.decoded.read(path, indices)


def _frame_count(frames: FrameSource, video: Video) -> int:
    n = frames.num_frames(video.path)
    if n < 1:
        raise VideoError(f"{video.path}: no frame decodes")
    return n


def _warn_bad(path, err: Exception) -> None:
    reason = str(err)
    # Our errors start with the path already: say it once.
    log.warning("skipping unreadable video %s", reason if reason.startswith(str(path)) else f"{path}: {reason}")


class _EpochSampled:
    """`clips_per_video` samples of each video per epoch (or `clips_per_epoch` samples in all,
    the videos taken in turn), each drawn from its own generator seeded by (seed, epoch, index)."""

    videos: list[Video]
    seed: int
    clips_per_video: int = 1
    clips_per_epoch: int | None = None
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.clips_per_epoch if self.clips_per_epoch else len(self.videos) * self.clips_per_video

    def _draw(self, i: int) -> tuple[Video, np.random.Generator]:
        return self.videos[i % len(self.videos)], np.random.default_rng((self.seed, self.epoch, i))


class PretrainClips(_EpochSampled):
    """PRP pretraining samples: dilated clip X(s), rate label, and (with a decoder) the slow-down target.

    Item dict: clip (3, T, c, c) float32 · rate_label int · adjusted int (0 ok, 1 rate
    resampled, 2 padded) · and when rec_rate is set: target (3, T·r, c, c) float32 in
    [0, 1] · target_real (T·r,) bool · motion (1, T·r, c, c) float32 when motion=True.
    """

    def __init__(
        self,
        videos: Sequence[Video],
        frames: FrameSource,
        rates: tuple[int, ...] = (1, 2, 4, 8),
        clip_len: int = 16,
        crop: int = 112,
        rec_rate: int | None = None,
        motion: bool = True,
        random_crop: bool = True,
        seed: int = 0,
        short_videos: str = "resample",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        clips_per_video: int = 1,
        clips_per_epoch: int | None = None,
    ):
        self.videos, self.frames = list(videos), frames
        self.clips_per_video = clips_per_video  # an epoch draws this many independent samples of each video
        self.clips_per_epoch = clips_per_epoch
        self.rates, self.clip_len, self.crop = tuple(rates), clip_len, crop
        self.rec_rate, self.motion, self.random_crop = rec_rate, motion, random_crop
        self.seed, self.short_videos, self.mean, self.std = seed, short_videos, mean, std
        self.epoch = 0

    def __getitem__(self, i: int) -> dict | None:
        video, rng = self._draw(i)
        try:
            n = _frame_count(self.frames, video)
            choice = choose_rate(n, self.rates, self.clip_len, self.rec_rate, rng, self.short_videos)
            span = self.frames.read(video.path, padded_range(choice.start, choice.span, n))
        except VideoError as e:
            _warn_bad(video.path, e)
            return None
        h, w = span.shape[1:3]
        y, x = random_crop_offsets(h, w, self.crop, rng) if self.random_crop else ((h - self.crop) // 2, (w - self.crop) // 2)
        span = crop_frames(span, y, x, self.crop)  # one crop for input, target and motion
        clip, target, real = input_and_target(span, self.clip_len, choice.rate, self.rec_rate)
        item = {"clip": to_input(clip, self.mean, self.std), "rate_label": choice.label, "adjusted": ADJUSTED_CODES[choice.adjusted]}
        if self.rec_rate is not None:
            item["target"] = target
            item["target_real"] = real
            if self.motion:
                m = motion_attention(span, self.clip_len, choice.rate, self.clip_len * self.rec_rate)
                item["motion"] = m[None]
        return item


class TrainClips(_EpochSampled):
    """Supervised finetuning samples: one clip of T frames (step `sample_rate`) from a random start, random crop."""

    def __init__(self, videos: Sequence[Video], frames: FrameSource, spec: Preprocess, seed: int = 0, random_crop: bool = True,
                 clips_per_video: int = 1, clips_per_epoch: int | None = None):
        self.videos, self.frames, self.spec, self.seed, self.random_crop = list(videos), frames, spec, seed, random_crop
        self.clips_per_video, self.clips_per_epoch = clips_per_video, clips_per_epoch
        self.epoch = 0

    def __getitem__(self, i: int) -> dict | None:
        (video, rng), spec = self._draw(i), self.spec
        try:
            n = _frame_count(self.frames, video)
            span = spec.frames * spec.sample_rate
            start = int(rng.integers(0, max(1, n - span + 1)))
            idx, _ = clip_indices(start, spec.frames, spec.sample_rate, n)
            frames = self.frames.read(video.path, idx)
        except VideoError as e:
            _warn_bad(video.path, e)
            return None
        h, w = frames.shape[1:3]
        if self.random_crop:
            y, x = random_crop_offsets(h, w, spec.crop, rng)
            clip = to_input(crop_frames(frames, y, x, spec.crop), spec.mean, spec.std)
        else:
            clip = spec.clip(frames)
        return {"clip": clip, "label": video.label}


class EvalClips:
    """All test clips of one video per item: clips (K, 3, T, c, c), centred at linspace over the video.

    Always decodes the video itself (never the lossy cache), through `Preprocess.clip`, the
    function export parity and the runtime use too. One decode pass serves all K clips.
    """

    def __init__(self, videos: Sequence[Video], spec: Preprocess, num_clips: int = 10, frames: FrameSource | None = None):
        self.videos, self.spec, self.num_clips = list(videos), spec, num_clips
        self.frames = frames or DecodedFrames(spec.short_side)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict | None:
        video, spec = self.videos[i], self.spec
        try:
            n = _frame_count(self.frames, video)
            span = spec.frames * spec.sample_rate
            per_clip = [clip_indices(s, spec.frames, spec.sample_rate, n) for s in eval_clip_starts(n, span, self.num_clips)]
            wanted = np.unique(np.concatenate([idx for idx, _ in per_clip]))
            frames = self.frames.read(video.path, wanted)
        except VideoError as e:
            _warn_bad(video.path, e)
            return None
        pos = {int(f): k for k, f in enumerate(wanted)}
        clips = np.stack([spec.clip(frames[[pos[int(f)] for f in idx]]) for idx, _ in per_clip])
        return {"clips": clips, "label": video.label, "index": i, "padded": sum(p for _, p in per_clip)}
