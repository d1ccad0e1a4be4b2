"""Does the video library reproduce the paper's retrieval protocol? (issue 19; docs/results.md)

Tiny preset, through the library itself: every test video of the run's dataset queries the
library with `Library.search(video, where=training videos)`; hit@k when one of the k nearest
training videos shares its class. Printed beside eval.json's retrieval (which averages 10
centred clips' full retrieval features of the same pretrained encoder).

    prp-deploy export RUN --from pretrain --out /tmp/pre
    prp-deploy index ~/.cache/prp-deploy/datasets/synth-*/UCF-101 --model /tmp/pre --out /tmp/lib
    python scripts/library_retrieval.py tiny --library /tmp/lib --eval RUN/eval.json

Paper's input (16 × 112², full width): the library's 512-d vector against the paper's 9,216-d
feature, both from the same windows of a random-init export (no trained paper-size model
fits this machine), on the same queries and gallery:

    python scripts/library_retrieval.py paper --backbone r21d --stride 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from prp_deploy.data.tasks import resolve_index

KS = (1, 5, 10)


def hits_at(ranked_labels: list[list[int]], q_labels: list[int]) -> dict[str, float]:
    return {f"top{k}": 100.0 * float(np.mean([q in r[:k] for r, q in zip(ranked_labels, q_labels)])) for k in KS}


def cosine_hits(query: np.ndarray, q_labels, gallery: np.ndarray, g_labels) -> dict[str, float]:
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")
    return hits_at([[int(g_labels[j]) for j in row[:max(KS)]] for row in order], list(q_labels))


def tiny(args) -> None:
    from prp_deploy.library import Library

    index = resolve_index(None, None, 1)
    lib = Library(args.library)
    gallery = {str(v.path.absolute()): v.label for v in index.train}
    labels_of = {**gallery, **{str(v.path.absolute()): v.label for v in index.test}}
    t0 = time.perf_counter()
    ranked, q_labels = [], []
    for v in index.test:
        hits = lib.search(str(v.path), k=max(KS), where=lambda s: s in gallery)
        ranked.append([labels_of[h.source] for h in hits])
        q_labels.append(v.label)
    ours = hits_at(ranked, q_labels)
    ref = json.loads(Path(args.eval).read_text())["retrieval"]
    print(f"{len(index.test)} queries, gallery {len(gallery)} training videos, {time.perf_counter() - t0:.1f} s")
    print(f"{'':24s} " + " ".join(f"hit@{k:<5d}" for k in KS))
    print(f"{'library search':24s} " + " ".join(f"{ours[f'top{k}']:8.2f}" for k in KS))
    print(f"{'eval.json':24s} " + " ".join(f"{ref[f'top{k}']:8.2f}" for k in KS))
    print(f"{'difference':24s} " + " ".join(f"{ours[f'top{k}'] - ref[f'top{k}']:+8.2f}" for k in KS))


def paper(args) -> None:
    import tempfile

    from prp_deploy import Recognizer
    from prp_deploy.export.random_model import export_random

    index = resolve_index(None, None, 1)
    with tempfile.TemporaryDirectory() as tmp:
        export = export_random(args.backbone, args.depth, 1.0, 16, 112, out=Path(tmp), int8=False)
        rec = Recognizer(export, allow_unverified=True)  # random weights: nothing to verify
        channels = rec.info.raw["feature_channels"]
        videos = [*index.train, *index.test]
        sums: dict[str, list] = {}
        t0 = time.perf_counter()
        for r in rec.stream_many([str(v.path) for v in videos], task="features", stride=args.stride, batch=4):
            s = sums.setdefault(r["source"], [0.0, 0])
            s[0] = s[0] + r["features"].astype(np.float64)
            s[1] += 1
        seconds = time.perf_counter() - t0
    full = {k: v[0] / v[1] for k, v in sums.items()}
    windows = sum(v[1] for v in sums.values())
    feats = lambda vs: np.stack([full[str(v.path)] for v in vs])  # noqa: E731
    g, q = feats(index.train), feats(index.test)
    pooled = lambda x: x.reshape(len(x), channels, -1).mean(-1)  # noqa: E731
    a = cosine_hits(q, [v.label for v in index.test], g, [v.label for v in index.train])
    b = cosine_hits(pooled(q), [v.label for v in index.test], pooled(g), [v.label for v in index.train])
    print(f"random-init {args.backbone}-{args.depth} at 16x112^2: {len(videos)} videos, {windows} windows in {seconds:.0f} s "
          f"({windows / seconds:.2f} windows/s); feature {g.shape[1]}-d, library vector {channels}-d")
    print(f"{'':28s} " + " ".join(f"hit@{k:<5d}" for k in KS))
    print(f"{'paper feature (' + str(g.shape[1]) + '-d)':28s} " + " ".join(f"{a[f'top{k}']:8.2f}" for k in KS))
    print(f"{'library vector (' + str(channels) + '-d)':28s} " + " ".join(f"{b[f'top{k}']:8.2f}" for k in KS))
    print(f"{'difference':28s} " + " ".join(f"{b[f'top{k}'] - a[f'top{k}']:+8.2f}" for k in KS))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tiny")
    t.add_argument("--library", required=True)
    t.add_argument("--eval", required=True, help="the run's eval.json")
    s = sub.add_parser("paper")
    s.add_argument("--backbone", default="r21d")
    s.add_argument("--depth", type=int, default=10)
    s.add_argument("--stride", type=int, default=40, help="source frames between windows (fewer windows: minutes, not hours)")
    args = p.parse_args(argv)
    tiny(args) if args.what == "tiny" else paper(args)


if __name__ == "__main__":
    sys.exit(main())
