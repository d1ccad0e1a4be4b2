"""`prp-deploy train`: pretraining → finetuning → evaluation into one run folder.

RUN/
  config.yaml              everything needed to rerun (schema_version, seed, versions beside)
  pretrain/{best,last}.pt  PRP model; best = lowest validation loss
  finetune/{best,last}.pt  action recogniser; best = highest validation accuracy
  metrics.jsonl            one line per epoch and stage
  tensorboard/             event files
  eval.json                pretext, recognition, retrieval (percent)
  curves.png               loss / accuracy curves
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from ..data.cache import FrameCache
from ..data.clips import CachedFrames, DecodedFrames, EvalClips, PretrainClips, TrainClips
from ..data.datasets import Video, VideoIndex
from ..data.loader import collate_skipping
from ..data.preprocess import Preprocess
from ..data.tasks import all_videos, prepare, resolve_index
from ..data.video import probe
from ..errors import PRPError, VideoError
from ..models import ActionRecognizer, PRPModel, build_encoder
from ..paths import runs_dir
from .checkpoint import encoder_config_of, load_checkpoint, load_encoder_weights
from .common import MetricsLog, Runtime, StopFlag, setup_runtime, to_device, versions
from .config import TrainConfig, val_count
from .evaluate import majority_chance, rate_accuracy, recognition, retrieval
from .losses import prp_loss
from .loop import Stage, run_stage
from .optim import make_optimizer, make_scheduler, steps_per_epoch
from .splits import labelled_subset, split_validation, train_videos_of

STAGES = ("all", "pretrain", "finetune", "eval")
EVAL_SCHEMA_VERSION = 1


def default_run_name(cfg: TrainConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.backbone}-{cfg.pretrain.objective}"


def preprocess_of(cfg: TrainConfig) -> Preprocess:
    d = cfg.data
    return Preprocess(short_side=d.short_side, crop=d.crop, frames=d.frames, sample_rate=1, mean=tuple(d.mean), std=tuple(d.std))


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


def _frame_source(cfg: TrainConfig):
    return CachedFrames(FrameCache(cfg.data.short_side, "jpeg")) if cfg.data.use_cache else DecodedFrames(cfg.data.short_side)


def fill_cache(index: VideoIndex, cfg: TrainConfig, say) -> None:
    """Decode the dataset once into the frame cache (later runs reuse it): the built-in data,
    and any data trained with the tiny preset, whose small frames make this seconds to minutes.

    Pretraining reads up to 8·T + 1 consecutive frames per sample; from the cache that is one
    read and the JPEG decodes of those frames, instead of a decode from the video's start.
    For full-size datasets `prp-deploy data prepare --workers N` does this explicitly, since
    it can take hours there.
    """
    cache = FrameCache(cfg.data.short_side, "jpeg")
    if all(cache.has(v.path) for v in all_videos(index)):
        return
    t0 = time.perf_counter()
    report = prepare(index, cache, workers=max(1, cfg.data.workers))
    say(f"frame cache: {report.written} videos decoded into {cache.root} in {time.perf_counter() - t0:.0f} s"
        + (f", {len(report.failed)} unreadable" if report.failed else ""))


def _random_encoder(cfg: TrainConfig) -> torch.nn.Module:
    """The seeded random initialisation: objective `none`, the paper's baseline row."""
    torch.manual_seed(cfg.seed)
    return build_encoder(cfg.model)


def pretrain(cfg: TrainConfig, run_dir: Path, train: list[Video], val: list[Video], rt: Runtime, resume: bool, stop: StopFlag, metrics: MetricsLog, say) -> dict:
    p, d = cfg.pretrain, cfg.data
    torch.manual_seed(cfg.seed)
    dp, gp = p.objective in ("dp", "dgp"), p.objective in ("gp", "dgp")
    model = PRPModel(build_encoder(cfg.model), num_rates=len(p.intervals) if dp else None, rec_rate=p.rec_rate if gp else None, width=cfg.model.width)
    model.to(rt.device)
    if rt.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    head = list(model.rate_head.parameters()) if dp else []
    head_ids = {id(q) for q in head}
    groups = [{"params": [q for q in model.parameters() if id(q) not in head_ids], "lr": p.lr}]
    if head:
        groups.append({"params": head, "lr": p.lr * p.head_lr_mult})  # the rate head learns 10× faster
    optimizer = make_optimizer(groups, p)
    common = dict(rates=p.intervals, clip_len=d.frames, crop=d.crop, rec_rate=p.rec_rate if gp else None, motion=p.motion_attention,
                  short_videos=d.short_videos, mean=d.mean, std=d.std)
    frames = _frame_source(cfg)
    train_set = PretrainClips(train, frames, random_crop=p.random_crop, seed=cfg.seed, clips_per_video=p.clips_per_video,
                              clips_per_epoch=p.clips_per_epoch, **common)
    scheduler = make_scheduler(optimizer, p, p.epochs * steps_per_epoch(len(train_set), p.batch_size, rt.world))
    # Validation: the same clips every epoch (epoch 0 of its own seed), centre crop.
    val_set = PretrainClips(val, frames, random_crop=False, seed=cfg.seed + 1, clips_per_video=p.val_clips, **common)
    use_real_only = not p.interpolated_in_loss

    def step(net, batch):
        out = net(batch["clip"])
        loss, parts = prp_loss(out, batch, p.lambda_d, p.lambda_g, use_real_only)
        n = batch["clip"].shape[0]
        stats = {k: v * n for k, v in parts.items()}
        if "rate_logits" in out:
            stats["correct"] = (out["rate_logits"].argmax(1) == batch["rate_label"]).sum().float()
        return loss, stats

    @torch.no_grad()
    def validate(m):
        m.eval()
        total, correct, n = 0.0, 0, 0
        labels: list[int] = []
        loader = torch.utils.data.DataLoader(val_set, batch_size=p.batch_size, num_workers=d.workers, collate_fn=collate_skipping)
        for batch, _ in loader:
            if batch is None:
                continue
            batch = to_device(batch, rt.device, False)
            with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
                out = m(batch["clip"])
                loss, _ = prp_loss(out, batch, p.lambda_d, p.lambda_g, use_real_only)
            k = batch["clip"].shape[0]
            total += float(loss) * k
            n += k
            if "rate_logits" in out:
                correct += int((out["rate_logits"].argmax(1) == batch["rate_label"]).sum())
                labels += batch["rate_label"].tolist()
        if n == 0:
            raise PRPError("no validation clip could be read")
        r = {"val_loss": total / n}
        if dp:
            r["val_rate_accuracy"] = 100.0 * correct / n
            r["val_rate_chance"] = majority_chance(np.asarray(labels), len(p.intervals))
        return r

    stage = Stage("pretrain", run_dir / "pretrain", p.epochs, p.batch_size, cfg.seed, d.workers, d.max_bad_fraction, "val_loss", "min",
                  per_step_schedule=p.schedule == "cosine")
    extra = {"encoder": cfg.model.to_dict(), "config": cfg.to_dict(), "versions": versions(), "objective": p.objective,
             "intervals": list(p.intervals), "rec_rate": p.rec_rate if gp else None}
    return run_stage(stage, model, optimizer, scheduler, train_set, step, validate, lambda s, r: s.step(r["val_loss"]),
                     rt, metrics, extra, resume, stop, say)


def finetune(cfg: TrainConfig, run_dir: Path, index: VideoIndex, train: list[Video], val: list[Video], init: Path | None,
             rt: Runtime, resume: bool, stop: StopFlag, metrics: MetricsLog, say) -> dict:
    f, d = cfg.finetune, cfg.data
    encoder = _random_encoder(cfg)
    if cfg.pretrain.objective != "none" or init is not None:
        init = init or run_dir / "pretrain" / "best.pt"
        if not Path(init).exists():
            raise PRPError(f"no pretrained encoder at {init}: run --stage pretrain first, or pass --init CHECKPOINT")
        load_encoder_weights(encoder, load_checkpoint(init), cfg.model, Path(init))
        say(f"finetune: encoder initialised from {init}")
    else:
        say("finetune: encoder randomly initialised (objective none)")
    torch.manual_seed(cfg.seed + 1)  # the classifier's init, independent of the encoder's source
    model = ActionRecognizer(encoder, index.num_classes, f.dropout).to(rt.device)
    if rt.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = make_optimizer([{"params": list(model.parameters())}], f)
    spec = preprocess_of(cfg)
    labelled = labelled_subset(train, f, cfg.seed)
    if len(labelled) < len(train):
        say(f"finetune: {len(labelled)} labelled training videos of {len(train)} (label budget), {len(val)} validation videos")
    train_set = TrainClips(labelled, _frame_source(cfg), spec, seed=cfg.seed, random_crop=True, clips_per_video=f.clips_per_video,
                           clips_per_epoch=f.clips_per_epoch)
    scheduler = make_scheduler(optimizer, f, f.epochs * steps_per_epoch(len(train_set), f.batch_size, rt.world))

    def step(net, batch):
        logits, _ = net(batch["clip"])
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["label"])
        return loss, {"correct": (logits.argmax(1) == batch["label"]).sum().float()}

    @torch.no_grad()
    def validate(m):
        m.eval()
        loader = torch.utils.data.DataLoader(EvalClips(val, spec, f.val_clips), batch_size=cfg.eval.batch_videos, num_workers=d.workers, collate_fn=collate_skipping)
        loss, correct, n = 0.0, 0, 0
        labels: list[int] = []
        for batch, _ in loader:
            if batch is None:
                continue
            x = batch["clips"]
            b, k = x.shape[:2]
            with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
                logits = m(x.flatten(0, 1).to(rt.device))[0].float().reshape(b, k, -1).mean(1)
            y = batch["label"].to(rt.device)
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            labels += y.tolist()
            n += b
        if n == 0:
            raise PRPError("no validation video could be read")
        return {"val_loss": loss / n, "val_accuracy": 100.0 * correct / n, "val_chance": majority_chance(np.asarray(labels), index.num_classes)}

    stage = Stage("finetune", run_dir / "finetune", f.epochs, f.batch_size, cfg.seed, d.workers, d.max_bad_fraction, "val_accuracy", "max",
                  per_step_schedule=f.schedule == "cosine")
    extra = {"encoder": cfg.model.to_dict(), "config": cfg.to_dict(), "versions": versions(), "classes": list(index.classes),
             "preprocess": spec.to_dict(), "train_fps": median_fps(train), "init": str(init) if init else None, "dataset": index.name,
             "labelled_videos": len(labelled)}
    return run_stage(stage, model, optimizer, scheduler, train_set, step, validate, lambda s, r: s.step(), rt, metrics, extra, resume, stop, say)


def pretrained_source(run_dir: Path, init: Path | None) -> Path | None:
    """The pretrained checkpoint of a run: its own pretrain/best.pt, else the --init it was finetuned from."""
    own = run_dir / "pretrain" / "best.pt"
    if own.exists():
        return own
    if init is not None:
        return Path(init)
    fine = run_dir / "finetune" / "best.pt"
    if fine.exists():
        recorded = load_checkpoint(fine).get("init")
        return Path(recorded) if recorded else None
    return None


def evaluate(cfg: TrainConfig, run_dir: Path, index: VideoIndex, val: list[Video], rt: Runtime, say, init: Path | None = None) -> dict:
    """eval.json: pretext on the validation clips, recognition on the test list, retrieval test → train."""
    spec, e, p, d = preprocess_of(cfg), cfg.eval, cfg.pretrain, cfg.data
    result: dict = {"schema_version": EVAL_SCHEMA_VERSION}
    pre_ckpt = pretrained_source(run_dir, init)
    if p.objective == "none" and init is None:
        encoder = _random_encoder(cfg).to(rt.device)
        result["pretext"] = {"rate_accuracy": None, "chance": None}
    else:
        if pre_ckpt is None or not pre_ckpt.exists():
            raise PRPError(f"{pre_ckpt or run_dir / 'pretrain' / 'best.pt'}: missing; run --stage pretrain first, or pass --init")
        result["pretrained_from"] = str(pre_ckpt)
        state = load_checkpoint(pre_ckpt)
        encoder = build_encoder(encoder_config_of(state))
        load_encoder_weights(encoder, state, encoder_config_of(state), pre_ckpt)
        encoder.to(rt.device)
        if state.get("intervals") and state.get("objective") in ("dp", "dgp"):
            model = PRPModel(build_encoder(encoder_config_of(state)), len(state["intervals"]), state.get("rec_rate"), encoder_config_of(state).width)
            model.load_state_dict(state["model"])
            model.to(rt.device)
            val_set = PretrainClips(val, DecodedFrames(d.short_side), rates=tuple(state["intervals"]), clip_len=d.frames, crop=d.crop,
                                    rec_rate=None, random_crop=False, seed=cfg.seed + 1, short_videos=d.short_videos, mean=d.mean, std=d.std,
                                    clips_per_video=p.val_clips)
            result["pretext"] = rate_accuracy(model, val_set, rt, p.batch_size, d.workers)
        else:
            result["pretext"] = {"rate_accuracy": None, "chance": None}
    say("eval: retrieval (pretrained encoder, test queries the training set)")
    result["retrieval"] = retrieval(encoder, index.train, index.test, spec, e.clips, rt, e.retrieval_ks, e.batch_videos, d.workers)
    fine_ckpt = run_dir / "finetune" / "best.pt"
    if fine_ckpt.exists():
        state = load_checkpoint(fine_ckpt)
        model = ActionRecognizer(build_encoder(encoder_config_of(state)), len(state["classes"]), cfg.finetune.dropout)
        model.load_state_dict(state["model"])
        say("eval: recognition (finetuned model, 10 clips per test video)")
        result["recognition"] = recognition(model.to(rt.device), index.test, spec, e.clips, rt, e.batch_videos, d.workers)
    else:
        result["recognition"] = None
    f, train_videos = cfg.finetune, train_videos_of(index, cfg)
    result["labels"] = {"labels_per_class": f.labels_per_class, "label_fraction": f.label_fraction,
                        "labelled_videos": len(labelled_subset(train_videos, f, cfg.seed)), "training_videos": len(train_videos)}
    result.update({"dataset": index.name, "split": index.split, "config": cfg.to_dict(), "config_hash": cfg.hash(), "seed": cfg.seed, "versions": versions()})
    return result


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def plot_curves(run_dir: Path) -> Path | None:
    """curves.png: loss (log scale, so one early spike does not flatten the rest) and accuracy
    per epoch for each stage, with the chance level of each accuracy as a dashed line."""
    records = MetricsLog(run_dir, enabled=False).read()
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in ("pretrain", "finetune") if any(r["stage"] == s for r in records)]
    fig, axes = plt.subplots(2, len(stages), figsize=(5 * len(stages), 6), squeeze=False)
    for col, s in enumerate(stages):
        rs = [r for r in records if r["stage"] == s]
        ep = [r["epoch"] for r in rs]
        axes[0, col].plot(ep, [r["train_loss"] for r in rs], label="train loss")
        axes[0, col].plot(ep, [r["val_loss"] for r in rs], label="val loss")
        axes[0, col].set_title(s)
        axes[0, col].set_yscale("log")
        axes[0, col].legend()
        for key, label in (("train_accuracy", "train acc %"), ("val_rate_accuracy", "val rate acc %"), ("val_accuracy", "val acc %")):
            if key in rs[0]:
                axes[1, col].plot(ep, [r[key] for r in rs], label=label)
        for key in ("val_rate_chance", "val_chance"):
            if key in rs[-1]:
                axes[1, col].axhline(rs[-1][key], color="grey", linestyle="--", label=f"chance {rs[-1][key]:.1f} %")
        if axes[1, col].lines:
            axes[1, col].set_ylim(0, 100)
        if not axes[1, col].lines:  # GP alone has no accuracy to plot
            axes[1, col].set_visible(False)
            continue
        axes[1, col].set_xlabel("epoch")
        axes[1, col].legend()
    fig.tight_layout()
    out = run_dir / "curves.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def newest_run(root: Path | None = None) -> Path:
    root = root or runs_dir()
    runs = sorted((p for p in root.glob("*") if (p / "config.yaml").exists()), key=lambda p: p.stat().st_mtime) if root.exists() else []
    if not runs:
        raise PRPError(f"no run under {root}: start one with `prp-deploy train`")
    return runs[-1]


def train(cfg: TrainConfig, stage: str = "all", out: Path | None = None, init: Path | None = None, resume: bool = False,
          say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Path:
    """Run `stage` ("all" = pretrain → finetune → eval) of `cfg` into `out`; returns the run folder."""
    if stage not in STAGES:
        raise PRPError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    rt = setup_runtime(cfg.device)
    if not rt.is_main:  # under torchrun, rank 0 speaks and writes for everyone
        say = lambda s: None  # noqa: E731
    index = resolve_index(cfg.data.data, cfg.data.dataset, cfg.data.split, say)
    if cfg.data.data is None:  # record what the built-in default resolved to, so config.yaml reruns it
        cfg = replace(cfg, data=replace(cfg.data, dataset="ucf101"))
    if cfg.data.use_cache and (cfg.data.data is None or cfg.preset == "tiny") and rt.is_main:
        fill_cache(index, cfg, say)
    run_dir = Path(out) if out else runs_dir() / default_run_name(cfg)
    config_path = run_dir / "config.yaml"
    if config_path.exists() and not resume:
        existing = yaml.safe_load(config_path.read_text()) or {}
        same = existing.get("config_hash") == cfg.hash()
        if stage in ("all", "pretrain") or not same:
            raise PRPError(f"{run_dir}: already holds a run{'' if same else ' with another config'}; use --resume to continue it, or another --out")
    if rt.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume or not config_path.exists():  # a resume may have extended the epochs
            config_path.write_text(yaml.safe_dump({**cfg.to_dict(), "config_hash": cfg.hash(), "versions": versions()}, sort_keys=False))
    train_videos, val_videos = split_validation(index.train, val_count(cfg, index.name, len(index.train)), cfg.seed)
    say(f"run {run_dir}: {index.name} split {index.split}, {len(train_videos)} train / {len(val_videos)} val / {len(index.test)} test videos, "
        f"{cfg.model.backbone}-{cfg.model.depth} width {cfg.model.width}, objective {cfg.pretrain.objective}, device {rt.device}")
    metrics = MetricsLog(run_dir, enabled=rt.is_main)
    stop = StopFlag()
    try:
        with stop.installed():
            # With --init the encoder comes pretrained (e.g. UCF101 → HMDB51): no pretraining here.
            if stage in ("all", "pretrain") and cfg.pretrain.objective != "none" and init is None:
                pretrain(cfg, run_dir, train_videos, val_videos, rt, resume, stop, metrics, say)
                if rt.world > 1:
                    torch.distributed.barrier()  # every rank finetunes from the best.pt rank 0 has finished writing
            if stage in ("all", "finetune"):
                finetune(cfg, run_dir, index, train_videos, val_videos, init, rt, resume, stop, metrics, say)
        if stage in ("all", "eval") and rt.is_main:
            result = evaluate(cfg, run_dir, index, val_videos, rt, say, init)
            write_json_atomic(run_dir / "eval.json", result)
            say(eval_summary(result))
    finally:
        metrics.close()
        if rt.is_main:
            plot_curves(run_dir)
    return run_dir


def eval_summary(r: dict) -> str:
    parts = []
    if r["pretext"].get("rate_accuracy") is not None:
        parts.append(f"rate acc {r['pretext']['rate_accuracy']:.1f}% (chance {r['pretext']['chance']:.1f}%)")
    if r.get("recognition"):
        rec = r["recognition"]
        parts.append(f"recognition top1 {rec['top1']:.1f}% (chance {rec['chance']:.1f}%) top5 {rec['top5']:.1f}%")
    ret = r["retrieval"]
    parts.append(f"retrieval top1 {ret['top1']:.1f}% (chance {ret['chance']['top1']:.1f}%) "
                 + " ".join(f"@{k[3:]} {v:.1f}%" for k, v in ret.items() if k.startswith("top") and k != "top1"))
    return "eval: " + "; ".join(parts)
