"""Which videos of a dataset's training list do what: the validation hold-out, the labelled
part under a label budget, and what is left that no classifier was fitted on. Plain
functions of numbers and a seed, so training (which makes the split) and export (which
needs the same split to judge INT8 on videos the classifier never saw) agree."""

from __future__ import annotations

import numpy as np

from .datasets import Video

DEFAULT_VAL_VIDEOS = {"ucf101": 800, "hmdb51": 400, "folder": 800}
MAX_VAL_FRACTION = 0.15


def held_out_count(requested: int | None, dataset: str, n_train: int) -> int:
    """Videos held out of the training list for validation: the dataset default, capped at 15 %."""
    wanted = requested if requested is not None else DEFAULT_VAL_VIDEOS.get(dataset, 800)
    return max(1, min(wanted, int(MAX_VAL_FRACTION * n_train))) if n_train > 1 else 0


def split_validation(train, n_val: int, seed: int) -> tuple[list[Video], list[Video]]:
    """(train, val): n_val videos held out of the training list, chosen by the seed alone."""
    order = np.random.default_rng(seed).permutation(len(train))
    held = set(order[:n_val].tolist())
    return [v for i, v in enumerate(train) if i not in held], [v for i, v in enumerate(train) if i in held]


def labelled_subset(videos: list[Video], labels_per_class: int | None, label_fraction: float | None, seed: int) -> list[Video]:
    """The labelled part of the training list under the label budget, chosen per class by the seed.

    `labels_per_class` N: N videos of each class (all of a class that has fewer);
    `label_fraction` F: round(F · n) of each class's n videos, at least one. Neither: all.
    """
    if labels_per_class is None and label_fraction is None:
        return list(videos)
    rng = np.random.default_rng((seed, 7))
    by_class: dict[int, list[int]] = {}
    for i, v in enumerate(videos):
        by_class.setdefault(v.label, []).append(i)
    keep: list[int] = []
    for label in sorted(by_class):
        ids = by_class[label]
        n = labels_per_class if labels_per_class is not None else max(1, round(label_fraction * len(ids)))
        keep += [ids[j] for j in rng.permutation(len(ids))[: min(n, len(ids))]]
    return [videos[i] for i in sorted(keep)]


def finetune_split(train, dataset: str, seed: int, val_videos: int | None, labels_per_class: int | None,
                   label_fraction: float | None) -> tuple[list[Video], list[Video], list[Video]]:
    """(labelled, val, unlabelled) as a run with these settings split its training list: the
    videos the classifier was fitted on, those it was only validated on, and those it never
    saw labelled (pretraining may have seen them, without labels)."""
    rest, val = split_validation(train, held_out_count(val_videos, dataset, len(train)), seed)
    labelled = labelled_subset(rest, labels_per_class, label_fraction, seed)
    fitted = {v.path for v in labelled}
    return labelled, val, [v for v in rest if v.path not in fitted]
