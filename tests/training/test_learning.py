"""Learning, checked in seconds: the tiny preset's model and optimiser fit a handful of real
PRP samples. The full-budget claims (finetuned top-1, pretraining against random init) are
benchmarks in docs/results.md (scripts/ablation.py), not tests."""

import pytest
import torch

from prp_deploy.data.clips import DecodedFrames, PretrainClips
from prp_deploy.data.datasets import ucf101_index
from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.models import PRPModel, build_encoder
from prp_deploy.training.config import build_config
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
