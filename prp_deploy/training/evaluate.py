"""Evaluation as the paper reports it.

- Recognition: 10 clips per test video (centred at linspace over the video, center crop),
  logits averaged, top-1 / top-5.
- Retrieval (VCOP protocol): conv5 → MaxPool(1,2,2) → flatten, averaged over the 10 clips,
  of the *pretrained* encoder (random init for objective `none`); each test video queries
  the training videos by cosine similarity; a hit at k when any of the k nearest shares
  the query's class. Every video counts (the reference dropped the last partial batch).
- Pretext: playback-rate accuracy on the validation clips, and its chance level.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.clips import EvalClips, PretrainClips
from ..data.datasets import Video
from ..data.loader import collate_skipping
from ..data.preprocess import Preprocess
from ..errors import PRPError
from ..models import retrieval_features
from .common import Runtime, to_device


@torch.no_grad()
def video_outputs(
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    videos: Sequence[Video],
    spec: Preprocess,
    clips: int,
    rt: Runtime,
    batch_videos: int = 4,
    workers: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[int]]:
    """Per-video means over `clips` clips of each output of `forward`.

    Returns ({name: (V, ...) float32}, labels (V,), indices of unreadable videos). Each
    unreadable video is reported, not silently dropped.
    """
    loader = DataLoader(EvalClips(videos, spec, clips), batch_size=batch_videos, num_workers=workers, collate_fn=collate_skipping)
    sums: dict[str, list[np.ndarray]] = {}
    labels, seen = [], []
    for batch, _ in loader:
        if batch is None:
            continue
        x = batch["clips"]  # (B, K, 3, T, H, W)
        b, k = x.shape[:2]
        x = x.flatten(0, 1).to(rt.device, non_blocking=True)
        with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
            outs = forward(x)
        for name, v in outs.items():
            sums.setdefault(name, []).append(v.float().reshape(b, k, -1).mean(1).cpu().numpy())
        labels += batch["label"].tolist()
        seen += batch["index"].tolist()
    missing = sorted(set(range(len(videos))) - set(seen))
    if not seen:
        raise PRPError("no evaluation video could be read")
    return {k: np.concatenate(v) for k, v in sums.items()}, np.asarray(labels), missing


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[str, float]:
    """Percent of rows whose label is among the k highest logits (k capped at the class count)."""
    order = np.argsort(-logits, axis=1)
    out = {}
    for k in ks:
        hit = (order[:, : min(k, logits.shape[1])] == labels[:, None]).any(axis=1)
        out[f"top{k}"] = 100.0 * float(hit.mean())
    return out


def retrieval_hits(query: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray, ks=(1, 5, 10, 20, 50)) -> dict[str, float]:
    """Percent of queries with a same-class video among their k nearest gallery videos (cosine)."""
    if len(query) == 0 or len(gallery) == 0:
        raise PRPError("retrieval needs at least one query and one gallery video")
    q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    sim = q @ g.T  # (Q, G)
    order = np.argsort(-sim, axis=1, kind="stable")
    out = {}
    for k in ks:
        nearest = g_labels[order[:, : min(k, len(gallery))]]
        out[f"top{k}"] = 100.0 * float((nearest == q_labels[:, None]).any(axis=1).mean())
    return out


def recognition(model: torch.nn.Module, videos: Sequence[Video], spec: Preprocess, clips: int, rt: Runtime, batch_videos: int = 4, workers: int = 0) -> dict:
    model.eval()
    outs, labels, missing = video_outputs(lambda x: {"logits": model(x)[0]}, videos, spec, clips, rt, batch_videos, workers)
    return {**topk_accuracy(outs["logits"], labels), "videos": len(labels), "unreadable": len(missing), "clips_per_video": clips}


def retrieval(encoder: torch.nn.Module, train: Sequence[Video], test: Sequence[Video], spec: Preprocess, clips: int, rt: Runtime,
              ks=(1, 5, 10, 20, 50), batch_videos: int = 4, workers: int = 0) -> dict:
    encoder.eval()
    feat = lambda x: {"features": retrieval_features(encoder(x))}  # noqa: E731
    g, g_labels, g_missing = video_outputs(feat, train, spec, clips, rt, batch_videos, workers)
    q, q_labels, q_missing = video_outputs(feat, test, spec, clips, rt, batch_videos, workers)
    return {**retrieval_hits(q["features"], q_labels, g["features"], g_labels, ks), "queries": len(q_labels), "gallery": len(g_labels),
            "unreadable": len(g_missing) + len(q_missing), "feature_dim": int(g["features"].shape[1])}


@torch.no_grad()
def rate_accuracy(model: torch.nn.Module, val_set: PretrainClips, rt: Runtime, batch_size: int = 16, workers: int = 0) -> dict:
    """Playback-rate accuracy of the rate head on the fixed validation clips."""
    model.eval()
    correct = total = 0
    for batch, _ in DataLoader(val_set, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping):
        if batch is None:
            continue
        batch = to_device(batch, rt.device, False)
        logits = model(batch["clip"])["rate_logits"]
        correct += int((logits.argmax(1) == batch["rate_label"]).sum())
        total += len(batch["rate_label"])
    return {"rate_accuracy": 100.0 * correct / max(total, 1), "chance": 100.0 / len(val_set.rates), "clips": total}
