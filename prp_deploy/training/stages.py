"""The two training stages as `Stage`s for the loop: what each trains, on what, and how it
is validated (through `evaluate.py`, the same code as the final evaluation)."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from ..data.cache import FrameCache
from ..data.clips import CachedFrames, DecodedFrames, PretrainClips, TrainClips
from ..data.datasets import Video, VideoIndex
from ..data.video import probe
from ..errors import PRPError, VideoError
from ..models import ActionRecognizer, PRPModel, build_encoder, load_encoder_weights
from ..rundir import load_checkpoint, versions
from .common import Runtime
from .config import AVERAGE_EPOCHS, PRETRAIN_SELECT, TrainConfig
from .evaluate import pretext, recognition
from .losses import prp_loss
from .loop import Stage
from .optim import make_optimizer, make_scheduler, steps_per_epoch
from .splits import labelled_subset


def frame_source(cfg: TrainConfig):
    """Training reads the JPEG frame cache where `data prepare` (or the tiny preset) filled it."""
    short = cfg.data.preprocess.short_side
    return CachedFrames(FrameCache(short, "jpeg")) if cfg.data.use_cache else DecodedFrames(short)


def pretext_clips(cfg: TrainConfig, videos: list[Video], frames, rates, rec_rate: int | None, train: bool) -> PretrainClips:
    """Training clips (random crop, fresh draws each epoch), or the fixed validation clips
    (centre crop, epoch 0 of their own seed) that pretraining and eval.json's pretext share."""
    p, d, spec = cfg.pretrain, cfg.data, cfg.data.preprocess
    return PretrainClips(videos, frames, rates=tuple(rates), clip_len=spec.frames, crop=spec.crop, rec_rate=rec_rate,
                         motion=p.motion_attention, random_crop=p.random_crop if train else False,
                         seed=cfg.seed if train else cfg.seed + 1, short_videos=d.short_videos, mean=spec.mean, std=spec.std,
                         clips_per_video=p.clips_per_video if train else p.val_clips, clips_per_epoch=p.clips_per_epoch if train else None)


def median_fps(videos, limit: int = 200) -> float:
    """The training videos' median fps (from the first `limit`; counts are cached), for the runtime's --sample-rate auto."""
    fps = []
    for v in list(videos)[:limit]:
        try:
            f = probe(v.path).fps
        except VideoError:
            continue
        if f > 0:
            fps.append(f)
    return float(statistics.median(fps)) if fps else 0.0


def random_encoder(cfg: TrainConfig) -> torch.nn.Module:
    """The seeded random initialisation: objective `none`, the paper's baseline row."""
    torch.manual_seed(cfg.seed)
    return build_encoder(cfg.model)


def _on_device(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    model = model.to(rt.device)
    return model.to(memory_format=torch.channels_last_3d) if rt.channels_last else model


def _checkpoint_extra(cfg: TrainConfig) -> dict:
    """What every checkpoint carries to rebuild itself: export and finetuning need nothing else."""
    return {"encoder": cfg.model.to_dict(), "preprocess": cfg.data.preprocess.to_dict(), "config": cfg.to_dict(),
            "config_hash": cfg.hash(), "versions": versions()}


def pretrain_stage(cfg: TrainConfig, run_dir: Path, train: list[Video], val: list[Video], rt: Runtime, keep_epochs: bool = False) -> Stage:
    p, d = cfg.pretrain, cfg.data
    torch.manual_seed(cfg.seed)
    dp, gp = p.objective in ("dp", "dgp"), p.objective in ("gp", "dgp")
    model = _on_device(PRPModel(build_encoder(cfg.model), num_rates=len(p.intervals) if dp else None,
                                rec_rate=p.rec_rate if gp else None, width=cfg.model.width), rt)
    head = list(model.rate_head.parameters()) if dp else []
    head_ids = {id(q) for q in head}
    groups = [{"params": [q for q in model.parameters() if id(q) not in head_ids], "lr": p.lr}]
    if head:
        groups.append({"params": head, "lr": p.lr * p.head_lr_mult})  # the paper's rate head learns 10× faster
    optimizer = make_optimizer(groups, p)
    frames = frame_source(cfg)
    train_set = pretext_clips(cfg, train, frames, p.intervals, p.rec_rate if gp else None, train=True)
    val_set = pretext_clips(cfg, val, frames, p.intervals, p.rec_rate if gp else None, train=False)

    def loss(out, batch):
        return prp_loss(out, batch, p.lambda_d, p.lambda_g, not p.interpolated_in_loss)[0]

    def step(net, batch):
        out = net(batch["clip"])
        total, parts = prp_loss(out, batch, p.lambda_d, p.lambda_g, not p.interpolated_in_loss)
        n = batch["clip"].shape[0]
        stats = {k: v * n for k, v in parts.items()}
        if "rate_logits" in out:
            stats["correct"] = (out["rate_logits"].argmax(1) == batch["rate_label"]).sum().float()
        return total, stats

    def validate(m):
        r = pretext(m, val_set, rt, p.batch_size, d.workers, loss)
        return {"val_loss": r["loss"], **({"val_rate_accuracy": r["rate_accuracy"], "val_rate_chance": r["chance"]} if dp else {})}

    extra = {**_checkpoint_extra(cfg), "objective": p.objective, "intervals": list(p.intervals), "rec_rate": p.rec_rate if gp else None}
    return Stage("pretrain", run_dir / "pretrain", model, optimizer,
                 make_scheduler(optimizer, p, p.epochs * steps_per_epoch(len(train_set), p.batch_size, rt.world)), p.schedule == "cosine",
                 train_set, step, validate, *PRETRAIN_SELECT[p.select], p.epochs, p.batch_size, cfg.seed, d.workers, d.max_bad_fraction, extra,
                 0 if keep_epochs else None, AVERAGE_EPOCHS if p.select == "average" else 0)


def finetune_stage(cfg: TrainConfig, run_dir: Path, index: VideoIndex, train: list[Video], val: list[Video], init: Path | None,
                   rt: Runtime, say) -> Stage:
    f, d, spec = cfg.finetune, cfg.data, cfg.data.preprocess
    encoder = random_encoder(cfg)
    if cfg.pretrain.objective != "none" or init is not None:
        init = init or run_dir / "pretrain" / "best.pt"
        if not Path(init).exists():
            raise PRPError(f"no pretrained encoder at {init}: run --stage pretrain first, or pass --init CHECKPOINT")
        load_encoder_weights(encoder, load_checkpoint(init), cfg.model, Path(init))
        say(f"finetune: encoder initialised from {init}")
    else:
        say("finetune: encoder randomly initialised (objective none)")
    torch.manual_seed(cfg.seed + 1)  # the classifier's init, independent of the encoder's source
    model = _on_device(ActionRecognizer(encoder, index.num_classes, f.dropout), rt)
    optimizer = make_optimizer([{"params": list(model.parameters())}], f)
    labelled = labelled_subset(train, f, cfg.seed)
    if len(labelled) < len(train):
        say(f"finetune: {len(labelled)} labelled training videos of {len(train)} (label budget), {len(val)} validation videos")
    train_set = TrainClips(labelled, frame_source(cfg), spec, seed=cfg.seed, random_crop=True, clips_per_video=f.clips_per_video,
                           clips_per_epoch=f.clips_per_epoch)

    def step(net, batch):
        logits, _ = net(batch["clip"])
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["label"])
        return loss, {"correct": (logits.argmax(1) == batch["label"]).sum().float()}

    def validate(m):
        r = recognition(m, val, spec, f.val_clips, rt, cfg.eval.batch_videos, d.workers)
        return {"val_loss": r["loss"], "val_accuracy": r["top1"], "val_chance": r["chance"]}

    extra = {**_checkpoint_extra(cfg), "classes": list(index.classes), "train_fps": median_fps(train),
             "init": str(init) if init else None, "dataset": index.name, "labelled_videos": len(labelled)}
    return Stage("finetune", run_dir / "finetune", model, optimizer,
                 make_scheduler(optimizer, f, f.epochs * steps_per_epoch(len(train_set), f.batch_size, rt.world)), f.schedule == "cosine",
                 train_set, step, validate, "val_accuracy", "max", f.epochs, f.batch_size, cfg.seed, d.workers, d.max_bad_fraction, extra)
