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


def majority_chance(labels: np.ndarray, num_classes: int | None = None) -> float:
    """Percent a constant guess of the most frequent label scores: chance for unbalanced labels too."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes or 0)
    return 100.0 * float(counts.max()) / max(1, int(counts.sum()))


def retrieval_chance(q_labels: np.ndarray, g_labels: np.ndarray, ks=(1, 5, 10, 20, 50)) -> dict[str, float]:
    """Expected hit@k, in percent, of a gallery ranked at random: for a query of class c with
    n_c same-class videos among G, P(hit) = 1 − C(G − n_c, k) / C(G, k)."""
    g = len(g_labels)
    counts = np.bincount(np.asarray(g_labels, np.int64), minlength=int(max(q_labels.max(initial=0), g_labels.max(initial=0))) + 1)
    out = {}
    for k in ks:
        miss = []
        for c in q_labels:
            others = g - counts[c]
            # C(others, k) / C(g, k) as a product, exact and without huge integers
            p = 1.0
            for i in range(min(k, g)):
                p *= max(0, others - i) / (g - i)
            miss.append(p)
        out[f"top{k}"] = 100.0 * (1.0 - float(np.mean(miss)))
    return out


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
    """Video-level top-1/top-5 (logits averaged over `clips` clips), the cross-entropy of those
    logits and the chance level. Finetuning's validation and eval.json's recognition both come from here."""
    model.eval()
    outs, labels, missing = video_outputs(lambda x: {"logits": model(x)[0]}, videos, spec, clips, rt, batch_videos, workers)
    loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(outs["logits"]).double(), torch.from_numpy(labels).long()))
    return {**topk_accuracy(outs["logits"], labels), "loss": loss, "chance": majority_chance(labels, outs["logits"].shape[1]),
            "videos": len(labels), "unreadable": len(missing), "clips_per_video": clips,
            "confusion": confusion(labels, outs["logits"].argmax(1), outs["logits"].shape[1])}


def confusion(labels: np.ndarray, predicted: np.ndarray, n: int) -> list[list[int]]:
    """counts[true][predicted]: the report's confusion matrix and per-class accuracy come from it."""
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts.tolist()


def retrieval_examples(query: np.ndarray, q_videos, gallery: np.ndarray, g_videos, per: int = 5, queries: int = 4) -> list[dict]:
    """A few queries (the first test video of the first `queries` classes) with their `per` nearest
    training videos: what the report shows of retrieval."""
    q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    firsts = list({v.label: i for i, v in reversed(list(enumerate(q_videos)))}.values())[::-1][:queries]
    out = []
    for i in sorted(firsts):
        sim = g @ q[i]
        order = np.argsort(-sim, kind="stable")[:per]
        out.append({"query": str(q_videos[i].path), "label": int(q_videos[i].label),
                    "hits": [{"video": str(g_videos[j].path), "label": int(g_videos[j].label), "score": round(float(sim[j]), 6)} for j in order]})
    return out


def retrieval(encoder: torch.nn.Module, train: Sequence[Video], test: Sequence[Video], spec: Preprocess, clips: int, rt: Runtime,
              ks=(1, 5, 10, 20, 50), batch_videos: int = 4, workers: int = 0) -> dict:
    encoder.eval()
    feat = lambda x: {"features": retrieval_features(encoder(x))}  # noqa: E731
    g, g_labels, g_missing = video_outputs(feat, train, spec, clips, rt, batch_videos, workers)
    q, q_labels, q_missing = video_outputs(feat, test, spec, clips, rt, batch_videos, workers)
    g_read = [v for i, v in enumerate(train) if i not in set(g_missing)]
    q_read = [v for i, v in enumerate(test) if i not in set(q_missing)]
    return {**retrieval_hits(q["features"], q_labels, g["features"], g_labels, ks), "chance": retrieval_chance(q_labels, g_labels, ks),
            "queries": len(q_labels), "gallery": len(g_labels),
            "unreadable": len(g_missing) + len(q_missing), "feature_dim": int(g["features"].shape[1]),
            "examples": retrieval_examples(q["features"], q_read, g["features"], g_read)}


@torch.no_grad()
def pretext(model: torch.nn.Module, val_set: PretrainClips, rt: Runtime, batch_size: int = 16, workers: int = 0,
            loss: Callable[[dict, dict], torch.Tensor] | None = None) -> dict:
    """On the fixed validation clips: the PRP loss (given `loss`) and, when the model has a
    rate head, the playback-rate accuracy with its chance level. Pretraining's validation
    and eval.json's pretext both come from here."""
    model.eval()
    total_loss, n, correct, labels, predicted = 0.0, 0, 0, [], []
    for batch, _ in DataLoader(val_set, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping):
        if batch is None:
            continue
        batch = to_device(batch, rt.device, rt.channels_last)
        with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
            out = model(batch["clip"])
            if loss is not None:
                total_loss += float(loss(out, batch)) * batch["clip"].shape[0]
        n += batch["clip"].shape[0]
        if "rate_logits" in out:
            correct += int((out["rate_logits"].argmax(1) == batch["rate_label"]).sum())
            labels += batch["rate_label"].tolist()
            predicted += out["rate_logits"].argmax(1).tolist()
    if not n:
        raise PRPError("no validation clip could be read")
    result: dict = {"clips": n}
    if loss is not None:
        result["loss"] = total_loss / n
    if labels:
        # Short videos redraw s, so the labels need not be uniform: chance is the majority label's share.
        counts = np.bincount(np.asarray(labels), minlength=len(val_set.rates))
        result.update(rate_accuracy=100.0 * correct / n, chance=majority_chance(np.asarray(labels), len(val_set.rates)),
                      uniform_chance=100.0 / len(val_set.rates), label_counts=counts.tolist(),
                      rates=list(val_set.rates), confusion=confusion(np.asarray(labels), np.asarray(predicted), len(val_set.rates)))
    return result
