"""Does PRP look at the motion? The paper's Fig. 6 made quantitative (issue 20; docs/results.md).

For every test video of the built-in dataset, `prp-deploy explain`'s activation map (conv5's
channel-mean magnitude, upsampled over the window) of a pretrained encoder and of the same
encoder at random init: the share of the map's mass inside the moving object's box, beside
the share of the frame the box covers (what a map blind to the object would score). The box
comes from the pixels: the built-in videos have a static background, so the object is where a
frame differs from the video's median frame.

    prp-deploy export RUN --from pretrain --out /tmp/pre
    python scripts/explain_motion.py --pretrained /tmp/pre --run RUN
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from prp_deploy.data.tasks import resolve_index
from prp_deploy.runtime.explain import explain_video, mass_inside, open_explainer, read_frames


def random_init_export(run: Path, out: Path) -> Path:
    """The run's pretrained checkpoint with its encoder re-initialised (seed 0), exported like it."""
    import torch

    from prp_deploy.export.pipeline import ExportOptions, export
    from prp_deploy.models import build_encoder
    from prp_deploy.rundir import save_checkpoint
    from prp_deploy.models import encoder_config_of

    state = torch.load(run / "pretrain" / "best.pt", map_location="cpu", weights_only=False)
    torch.manual_seed(0)
    encoder = build_encoder(encoder_config_of(state))
    fake = out / "run"
    (fake / "pretrain").mkdir(parents=True)
    state = {**state, "model": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}}  # export reads only the encoder
    save_checkpoint(state, fake / "pretrain" / "best.pt")
    export(fake, ExportOptions(stage="pretrain", out=out / "export", random_clips=0), say=lambda s: None)
    return out / "export"


def object_boxes(frames: np.ndarray, threshold: int = 30) -> np.ndarray:
    """(T, H, W) boolean: per frame, the bounding box of the pixels that differ from the median frame."""
    background = np.median(frames, axis=0)
    moving = np.abs(frames.astype(np.int16) - background).sum(-1) > threshold
    boxes = np.zeros(moving.shape, bool)
    for t, m in enumerate(moving):
        ys, xs = np.nonzero(m)
        if len(ys):
            boxes[t, ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] = True
    return boxes


def measure(export: Path, videos, say) -> tuple[float, float, int]:
    info, backend = open_explainer(export, allow_unverified=True)
    inside, share, n = [], [], 0
    for v in videos:
        all_frames = np.stack(read_frames(v.path, info))
        boxes = object_boxes(all_frames)
        for w in explain_video(v.path, info, backend):
            for t in range(len(w.frames)):
                f = min(w.start_frame + t * info.sample_rate, len(boxes) - 1)
                if boxes[f].any():
                    inside.append(mass_inside(w.activation[t], boxes[f]))
                    share.append(float(boxes[f].mean()))
                    n += 1
    return float(np.mean(inside)), float(np.mean(share)), n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrained", required=True, help="export --from pretrain of the run")
    p.add_argument("--run", required=True, help="the run folder (its pretrain checkpoint gives the architecture)")
    args = p.parse_args()
    videos = resolve_index(None, None, 1).test
    with tempfile.TemporaryDirectory() as tmp:
        random = random_init_export(Path(args.run), Path(tmp))
        rows = [("PRP-pretrained encoder", measure(Path(args.pretrained), videos, print)), ("random-init encoder", measure(random, videos, print))]
    print(f"{len(videos)} test videos; activation mass inside the moving object's box, against the box's share of the frame")
    print(f"{'':26s} {'mass inside':>12s} {'box share':>10s} {'ratio':>6s} {'frames':>7s}")
    for name, (inside, share, n) in rows:
        print(f"{name:26s} {100 * inside:11.1f}% {100 * share:9.1f}% {inside / share:6.2f} {n:7d}")


if __name__ == "__main__":
    main()
