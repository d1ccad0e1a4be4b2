"""Which training videos do what: the validation hold-out, and the labelled part under a label budget."""

from __future__ import annotations

import numpy as np

from ..data.datasets import Video, VideoIndex
from .config import TrainConfig, val_count


def split_validation(train: tuple[Video, ...], n_val: int, seed: int) -> tuple[list[Video], list[Video]]:
    """(train, val): n_val videos held out of the training list, chosen by the seed alone."""
    order = np.random.default_rng(seed).permutation(len(train))
    held = set(order[:n_val].tolist())
    return [v for i, v in enumerate(train) if i not in held], [v for i, v in enumerate(train) if i in held]


def train_videos_of(index: VideoIndex, cfg: TrainConfig) -> list[Video]:
    """The training list less the validation videos held out of it."""
    return split_validation(index.train, val_count(cfg, index.name, len(index.train)), cfg.seed)[0]


def labelled_subset(videos: list[Video], f, seed: int) -> list[Video]:
    """The labelled part of the training list under the label budget, chosen per class by the seed.

    `labels_per_class` N: N videos of each class (all of a class that has fewer);
    `label_fraction` F: round(F · n) of each class's n videos, at least one. Neither: all.
    """
    if f.labels_per_class is None and f.label_fraction is None:
        return list(videos)
    rng = np.random.default_rng((seed, 7))
    by_class: dict[int, list[int]] = {}
    for i, v in enumerate(videos):
        by_class.setdefault(v.label, []).append(i)
    keep: list[int] = []
    for label in sorted(by_class):
        ids = by_class[label]
        n = f.labels_per_class if f.labels_per_class is not None else max(1, round(f.label_fraction * len(ids)))
        keep += [ids[j] for j in rng.permutation(len(ids))[: min(n, len(ids))]]
    return [videos[i] for i in sorted(keep)]
