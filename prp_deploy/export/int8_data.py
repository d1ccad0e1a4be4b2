"""The clips INT8 export calibrates on and judges by, from the run's own split.

- Calibration: clips of the videos the classifier was fitted on (the labelled training videos).
- Held-back: the videos it was never fitted on, as the run split them (its validation videos
  and, under a label budget, the unlabelled training videos): unlike fitted videos their
  margins are as thin as a test video's, so a quantisation that erodes margins shows it. Half
  of them steer the engine (a few clips each), the other half judge what it made (10 clips
  each, the video-level protocol of the test verdict), so the judge is not the data the
  engine tuned on. The test videos never take part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.clips import EvalClips
from ..data.splits import finetune_split
from ..errors import PRPError
from .parity_clips import by_class_round_robin, clips_per_video, real_clips

MIN_CALIB_CLIPS = 8  # fewer and the ranges are a handful of clips' extremes
MIN_HELD_BACK = 24  # videos: under it a 1-video change is over 4 points and the judge decides nothing
HELD_BACK_VIDEOS = 256  # at most; 1 video = 0.78 points of the half that judges
STEER_CLIPS = 256  # clips an accuracy-control engine steers by
JUDGE_BYTES = 1 << 30  # the judge's clips are kept decoded: at most this much (the paper's 16x112² clip is 2.4 MB)


@dataclass
class HeldBack:
    judge: list[np.ndarray]  # per video, its clips (K, 3, T, crop, crop)
    labels: np.ndarray
    steer: np.ndarray  # clips the engine steers by, from the other videos
    source: str  # which of the run's videos these are, in words
    shared: bool = False  # too few videos to split: the judge saw the engine's videos (optimistic)
    fp32: dict = field(default_factory=dict)  # FP32's outputs on them, worked out once: "judge", "steer"


@dataclass
class Calibration:
    clips: np.ndarray  # (N, 3, T, crop, crop), from fitted training videos
    videos: list[str]
    held_back: HeldBack | None  # None: a bench model, quantised plain and unchecked
    spec: object = None


def _split_of(index, config: dict):
    d, f = config.get("data", {}), config.get("finetune", {})
    return finetune_split(index.train, index.name, int(config.get("seed", 0)), d.get("val_videos"), f.get("labels_per_class"),
                          f.get("label_fraction"))


def _judge_clips(videos, spec, per_video: int) -> tuple[list[np.ndarray], np.ndarray]:
    ds = EvalClips(videos, spec, per_video)
    clip_bytes = 4 * 3 * spec.frames * spec.crop * spec.crop
    most = max(1, JUDGE_BYTES // (clip_bytes * per_video))
    judge, labels = [], []
    for i in range(len(videos)):
        if len(judge) >= most:
            break
        item = ds[i]
        if item is not None:
            judge.append(item["clips"])
            labels.append(item["label"])
    return judge, np.array(labels, int)


def judge_and_steer(pool: list) -> tuple[list, list]:
    """The held-back videos in two halves that each span every class: alternate videos of each
    class go to either side, then each side is ordered one class at a time. (Halving the
    class-by-class round robin gave the judge classes 0, 2, 4, 6 and the steer 1, 3, 5, 7
    wherever the number of classes is even.)"""
    per_class: dict[int, list] = {}
    for v in pool:
        per_class.setdefault(v.label, []).append(v)
    judge = [v for group in per_class.values() for v in group[0::2]]
    steer = [v for group in per_class.values() for v in group[1::2]]
    return by_class_round_robin(judge), by_class_round_robin(steer)


def calibration(index, config: dict, spec, n: int, say, check: bool = True) -> Calibration:
    """Calibration clips (fitted training videos) and, with `check`, the held-back videos."""
    if check and n < MIN_CALIB_CLIPS:
        raise PRPError(f"--calib-clips {n} is too few to calibrate INT8 ranges; pass --calib-clips {MIN_CALIB_CLIPS} or more (64 is the default)")
    labelled, val, unlabelled = _split_of(index, config)
    clips, used = real_clips(labelled or list(index.train), spec, n, per_video=clips_per_video(n, labelled or list(index.train), 16))
    if not check:
        say(f"int8: {len(clips)} calibration clips from {len(used)} training videos (plain, unchecked)")
        return Calibration(clips, used, None, spec)
    pool = by_class_round_robin(val + unlabelled)[:HELD_BACK_VIDEOS]
    source = "validation" + (" and unlabelled training" if unlabelled else "") + " videos"
    if len(pool) < MIN_HELD_BACK:
        raise PRPError(f"int8: the run holds back only {len(pool)} videos its classifier was not fitted on ({source}); at least "
                       f"{MIN_HELD_BACK} are needed to judge a quantisation: retrain with more validation videos "
                       f"(data.val_videos) or a label budget (--labels-per-class)")
    shared = len(pool) < 2 * MIN_HELD_BACK
    judge_videos, steer_videos = (pool, pool) if shared else judge_and_steer(pool)
    judge, labels = _judge_clips(judge_videos, spec, 10)
    steer = real_clips(steer_videos, spec, STEER_CLIPS, clips_per_video(STEER_CLIPS, steer_videos, 4))[0]
    if len(judge) < MIN_HELD_BACK // 2:
        raise PRPError(f"int8: only {len(judge)} held-back videos could be decoded to judge INT8 (need {MIN_HELD_BACK // 2})")
    say(f"int8: {len(clips)} calibration clips from {len(used)} fitted training videos; held back ({source}): "
        f"{len(steer)} clips of {len(steer_videos)} videos steer, {len(judge)} videos judge"
        + (" (the same videos: too few to split, so the judge is optimistic)" if shared else ""))
    return Calibration(clips, used, HeldBack(judge, labels, steer, source, shared), spec)
