"""Which training videos do what, as a run's config says (the split itself: data/splits.py)."""

from __future__ import annotations

from ..data.datasets import Video, VideoIndex
from ..data import splits as data_splits
from ..data.splits import split_validation
from .config import TrainConfig, val_count

__all__ = ["split_validation", "train_videos_of", "labelled_subset"]


def train_videos_of(index: VideoIndex, cfg: TrainConfig) -> list[Video]:
    """The training list less the validation videos held out of it."""
    return split_validation(index.train, val_count(cfg, index.name, len(index.train)), cfg.seed)[0]


def labelled_subset(videos: list[Video], f, seed: int) -> list[Video]:
    """The labelled part of the training list under the finetune config `f`'s label budget."""
    return data_splits.labelled_subset(videos, f.labels_per_class, f.label_fraction, seed)
