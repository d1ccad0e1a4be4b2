"""Learning, checked in seconds: the tiny preset's model and optimiser fit a handful of real
PRP samples. The full-budget claims (finetuned top-1, pretraining against random init) are
benchmarks in docs/results.md (scripts/ablation.py), not tests."""

import pytest
import torch

from prp_deploy.data.clips import DecodedFrames, PretrainClips
from prp_deploy.data.datasets import ucf101_index
from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.models import PRPModel, build_encoder
from prp_deploy.training.config_files import build_config
from prp_deploy.training.losses import prp_loss
from prp_deploy.training.optim import make_optimizer


STEPS = 120  # about 40 s on 2 cores


@pytest.mark.slow
def test_tiny_preset_fits_a_few_playback_rate_samples(tmp_path):
    cfg = build_config("tiny", None, {})
    root = write_synthetic(tmp_path / "d", SynthSpec(classes=4, groups=3, clips_per_group=1, min_frames=72, max_frames=80))
    p, d = cfg.pretrain, cfg.data.preprocess
    samples = PretrainClips(list(ucf101_index(root, 1).train), DecodedFrames(d.short_side), rates=p.intervals, clip_len=d.frames,
                            crop=d.crop, rec_rate=None, random_crop=False, seed=0, clips_per_epoch=16)
    batch = torch.utils.data.default_collate([samples[i] for i in range(len(samples))])
    assert len(set(batch["rate_label"].tolist())) == 4  # every rate is in the batch
    torch.manual_seed(0)
    model = PRPModel(build_encoder(cfg.model), len(p.intervals), None, cfg.model.width)
    opt = make_optimizer([{"params": list(model.parameters())}], p)
    for _ in range(STEPS):
        model.train()
        loss, _ = prp_loss(model(batch["clip"]), batch, p.lambda_d, p.lambda_g, False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(batch["clip"])["rate_logits"].argmax(1) == batch["rate_label"]).float().mean())
    assert acc >= 0.9, acc  # chance is 0.25


def _shuffle_training_labels(root, seed: int = 0) -> None:
    """Move every *training* video of split 1 to a class folder drawn at random (and say so in
    trainlist01.txt): labels that no longer follow the motion. Test videos stay as they are."""
    import numpy as np

    lists = root / "ucfTrainTestlist"
    classes = [l.split()[1] for l in (lists / "classInd.txt").read_text().splitlines() if l.strip()]
    rng = np.random.default_rng(seed)
    lines = []
    for line in (lists / "trainlist01.txt").read_text().splitlines():
        rel = line.split()[0]
        new_class = classes[int(rng.integers(len(classes)))]
        dest = root / "UCF-101" / new_class / ("shuffled_" + rel.split("/")[1])
        (root / "UCF-101" / rel).rename(dest)
        lines.append(f"{new_class}/{dest.name} {classes.index(new_class) + 1}")
    (lists / "trainlist01.txt").write_text("\n".join(lines) + "\n")


LEARN = {"classes": 4, "groups": 3, "clips_per_group": 8, "width": 48, "height": 36, "min_frames": 40, "max_frames": 56}


def _train_and_eval(root, out):
    cfg = build_config("tiny", None, {
        "model": {"backbone": "r3d", "width": 0.25},
        "data": {"data": str(root), "dataset": "ucf101", "workers": 0},
        "pretrain": {"objective": "none"},
        "finetune": {"epochs": 1, "batch_size": 16, "clips_per_epoch": 16 * 160, "labels_per_class": None, "val_clips": 1},
        "eval": {"clips": 4}, "seed": 0})
    import json

    from prp_deploy.training.pipeline import train

    run = train(cfg, out=out, say=lambda s: None)
    return json.loads((run / "eval.json").read_text())["recognition"]


@pytest.mark.slow
def test_train_learns_the_motion_classes_and_not_shuffled_labels(tmp_path):
    """Through train() itself, held-out videos: at least chance + 30 points when labels follow
    the motion, within 10 points of chance when the training labels are shuffled (a control
    that fails if the test videos leak into training or the metric is wrong)."""
    real = write_synthetic(tmp_path / "real", SynthSpec(**LEARN))
    learned = _train_and_eval(real, tmp_path / "run-real")
    assert learned["top1"] >= learned["chance"] + 30, learned
    shuffled = write_synthetic(tmp_path / "shuffled", SynthSpec(**LEARN))
    _shuffle_training_labels(shuffled)
    control = _train_and_eval(shuffled, tmp_path / "run-shuffled")
    assert abs(control["top1"] - control["chance"]) <= 10, control
