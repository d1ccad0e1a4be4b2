"""Is the motion signal in the tiny preset's clips, and how fast does a 3-D CNN find it?

On SlideRight vs SlideLeft clips exactly as the tiny preset's finetuning sees them
(8 frames, 32 × 32 crops of 40-pixel frames):
1. a hand-made feature — the sign of the mean horizontal optical-flow estimate
   −Σ ∂I/∂t · ∂I/∂x / Σ (∂I/∂x)² — classifies them with no training at all;
2. small 3-D CNNs trained from scratch (Adam 1e-3, batch 16) for a few epochs.

    python scripts/probe_synthetic.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from prp_deploy.data.clips import DecodedFrames, TrainClips
from prp_deploy.data.loader import collate_skipping
from prp_deploy.data.preprocess import Preprocess
from prp_deploy.data.tasks import resolve_index
from prp_deploy.models import ActionRecognizer, EncoderConfig, build_encoder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    index = resolve_index(None, None, 1)
    videos = [v for v in index.train if v.label in (0, 1)]  # SlideRight, SlideLeft
    spec = Preprocess(short_side=40, crop=32, frames=8)
    ds = TrainClips(videos, DecodedFrames(40), spec, clips_per_video=8)
    batches = []
    for epoch in range(args.epochs):
        ds.set_epoch(epoch)
        batches.append([b for b, _ in DataLoader(ds, batch_size=16, shuffle=True, num_workers=2, collate_fn=collate_skipping,
                                                  generator=torch.Generator().manual_seed(epoch))])
    x = torch.cat([b["clip"] for b in batches[0]])
    y = torch.cat([b["label"] for b in batches[0]])
    g = x.mean(1)  # (N, T, H, W) grey
    dt = g[:, 1:] - g[:, :-1]
    dx = (g[:, :-1, :, 2:] - g[:, :-1, :, :-2]) / 2
    flow = -(dt[..., 1:-1] * dx).sum((1, 2, 3)) / (dx**2).sum((1, 2, 3))
    print(f"{len(videos)} videos, {len(x)} clips per epoch; hand-made flow sign accuracy: {100 * ((flow > 0).long() == (y == 0).long()).float().mean():.1f}%")
    for backbone in ("r21d", "c3d", "r3d"):
        torch.manual_seed(0)
        model = ActionRecognizer(build_encoder(EncoderConfig(backbone, 10, 0.25)), 2)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.time()
        for epoch, epoch_batches in enumerate(batches):
            correct = n = 0
            for b in epoch_batches:
                logits, _ = model(b["clip"])
                loss = torch.nn.functional.cross_entropy(logits, b["label"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += int((logits.argmax(1) == b["label"]).sum())
                n += len(b["label"])
            print(f"{backbone} width 0.25, epoch {epoch + 1} ({(epoch + 1) * len(epoch_batches)} steps): train accuracy {100 * correct / n:.1f}% ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
