"""`prp-deploy train`: pretraining → finetuning → evaluation into one run folder (its layout:
`prp_deploy/rundir.py`)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ..data.cache import FrameCache
from ..data.clips import DecodedFrames
from ..data.datasets import Video, VideoIndex
from ..data.tasks import all_videos, prepare, resolve_index
from ..errors import PRPError
from ..files import atomic_write
from ..models import ActionRecognizer, PRPModel, build_encoder, encoder_config_of, load_encoder_weights
from ..reports.html import refresh_report
from ..rundir import CONFIG_FILE, EVAL_FILE, load_checkpoint, read_run_config, run_lock, runs_dir, versions, write_run_config
from .common import MetricsLog, Runtime, StopFlag, setup_runtime
from .config import TrainConfig, val_count
from .evaluate import pretext, recognition, retrieval
from .loop import run_stage
from .report import eval_summary, plot_curves
from .splits import labelled_subset, split_validation, train_videos_of
from .stages import finetune_stage, pretext_clips, pretrain_stage, random_encoder

STAGES = ("all", "pretrain", "finetune", "eval")
EVAL_SCHEMA_VERSION = 1


def default_run_name(cfg: TrainConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model.backbone}-{cfg.pretrain.objective}"


def fill_cache(index: VideoIndex, cfg: TrainConfig, say) -> None:
    """Decode the dataset once into the frame cache (later runs reuse it): the built-in data,
    and any data trained with the tiny preset, whose small frames make this seconds to minutes.

    Pretraining reads up to 8·T + 1 consecutive frames per sample; from the cache that is one
    read and the JPEG decodes of those frames, instead of a decode from the video's start.
    For full-size datasets `prp-deploy data prepare --workers N` does this explicitly, since
    it can take hours there.
    """
    from tqdm import tqdm

    cache = FrameCache(cfg.data.preprocess.short_side, "jpeg")
    videos = all_videos(index)
    if all(cache.has(v.path) for v in videos):
        return
    t0 = time.perf_counter()
    with tqdm(total=len(videos), desc="frame cache", unit="video", disable=None, leave=False, file=sys.stderr) as bar:
        report = prepare(index, cache, workers=max(1, cfg.data.workers), progress=lambda: bar.update(1))
    say(f"frame cache: {report.written} videos decoded into {cache.root} in {time.perf_counter() - t0:.0f} s"
        + (f", {len(report.failed)} unreadable" if report.failed else ""))


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
    spec, e, p, d = cfg.data.preprocess, cfg.eval, cfg.pretrain, cfg.data
    result: dict = {"schema_version": EVAL_SCHEMA_VERSION, "pretext": {"rate_accuracy": None, "chance": None}}
    if p.objective == "none" and init is None:
        encoder = random_encoder(cfg).to(rt.device)
    else:
        pre_ckpt = pretrained_source(run_dir, init)
        if pre_ckpt is None or not pre_ckpt.exists():
            raise PRPError(f"{pre_ckpt or run_dir / 'pretrain' / 'best.pt'}: missing; run --stage pretrain first, or pass --init")
        result["pretrained_from"] = str(pre_ckpt)
        state = load_checkpoint(pre_ckpt)
        enc_cfg = encoder_config_of(state)
        encoder = build_encoder(enc_cfg)
        load_encoder_weights(encoder, state, enc_cfg, pre_ckpt)
        encoder.to(rt.device)
        if state.get("intervals") and state.get("objective") in ("dp", "dgp"):
            model = PRPModel(build_encoder(enc_cfg), len(state["intervals"]), state.get("rec_rate"), enc_cfg.width)
            model.load_state_dict(state["model"])
            clips = pretext_clips(cfg, val, DecodedFrames(spec.short_side), state["intervals"], None, train=False)
            result["pretext"] = pretext(model.to(rt.device), clips, rt, p.batch_size, d.workers)
    which = "random-init encoder" if p.objective == "none" and init is None else "pretrained encoder"
    say(f"eval: retrieval ({which}, test queries the training set)")
    result["retrieval"] = retrieval(encoder, index.train, index.test, spec, e.clips, rt, e.retrieval_ks, e.batch_videos, d.workers)
    result["recognition"] = None
    fine_ckpt = run_dir / "finetune" / "best.pt"
    if fine_ckpt.exists():
        state = load_checkpoint(fine_ckpt)
        model = ActionRecognizer(build_encoder(encoder_config_of(state)), len(state["classes"]), cfg.finetune.dropout)
        model.load_state_dict(state["model"])
        say("eval: recognition (finetuned model, 10 clips per test video)")
        result["recognition"] = recognition(model.to(rt.device), index.test, spec, e.clips, rt, e.batch_videos, d.workers)
    f, train_videos = cfg.finetune, train_videos_of(index, cfg)
    result["labels"] = {"labels_per_class": f.labels_per_class, "label_fraction": f.label_fraction,
                        "labelled_videos": len(labelled_subset(train_videos, f, cfg.seed)), "training_videos": len(train_videos)}
    result.update({"classes": list(index.classes), "dataset": index.name, "split": index.split, "config": cfg.to_dict(), "config_hash": cfg.hash(), "seed": cfg.seed, "versions": versions()})
    return result


def selection_line(rule: str, chosen: dict) -> str:
    """Which epoch pretrain/best.pt is, and by which rule (said at the end of pretraining)."""
    if not chosen:
        return "pretrain: best.pt is the initial model (no epoch ran)"
    rate = f"; its rate accuracy {chosen['val_rate_accuracy']:.1f} %" if rule != "rate_accuracy" and "val_rate_accuracy" in chosen else ""
    if rule == "average":
        e = chosen["averaged_epochs"]
        return (f"pretrain: best.pt is the mean of epochs {e[0]}-{e[-1]}'s weights (pretrain.select average), "
                f"validation loss {chosen.get('val_loss', float('nan')):.4f}{rate}")
    why = {"val_loss": f"lowest validation loss, {chosen.get('val_loss', float('nan')):.4f}",
           "rate_accuracy": f"highest validation playback-rate accuracy, {chosen.get('val_rate_accuracy', float('nan')):.1f} %",
           "last": "the last epoch"}[rule]
    return f"pretrain: best.pt is epoch {chosen['epoch']} (pretrain.select {rule}: {why}{rate})"


def prepare_run_dir(cfg: TrainConfig, run_dir: Path, stage: str, resume: bool, rt: Runtime) -> None:
    """config.yaml written into the run folder; refuses to mix two configs in one folder."""
    if (run_dir / CONFIG_FILE).exists() and not resume:
        same = read_run_config(run_dir).get("config_hash") == cfg.hash()
        if stage in ("all", "pretrain") or not same:
            raise PRPError(f"{run_dir}: already holds a run{'' if same else ' with another config'}; use --resume to continue it, or another --out")
    if rt.is_main and (resume or not (run_dir / CONFIG_FILE).exists()):  # a resume may have extended the epochs
        write_run_config(run_dir, cfg.to_dict(), cfg.hash())


def train(cfg: TrainConfig, stage: str = "all", out: Path | None = None, init: Path | None = None, resume: bool = False,
          say: Callable[[str], None] = lambda s: print(s, file=sys.stderr), keep_epochs: bool = False) -> Path:
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
    # One writer per run folder: a second `train --out RUN` (or --resume) while one runs is refused.
    with run_lock(run_dir) if rt.is_main else nullcontext():
        prepare_run_dir(cfg, run_dir, stage, resume, rt)
        train_videos, val_videos = split_validation(index.train, val_count(cfg, index.name, len(index.train)), cfg.seed)
        say(f"run {run_dir}: {index.name} split {index.split}, {len(train_videos)} train / {len(val_videos)} val / {len(index.test)} test videos, "
            f"{cfg.model.backbone}-{cfg.model.depth} width {cfg.model.width}, objective {cfg.pretrain.objective}, device {rt.device}")
        metrics = MetricsLog(run_dir, enabled=rt.is_main)
        stop = StopFlag()
        try:
            with stop.installed():
                # With --init the encoder comes pretrained (e.g. UCF101 → HMDB51): no pretraining here.
                if stage in ("all", "pretrain") and cfg.pretrain.objective != "none" and init is None:
                    # A resume keeps every epoch when the run began so (its epoch-0.pt): the flag is not config.
                    keep = keep_epochs or (resume and (run_dir / "pretrain" / "epoch-0.pt").exists())
                    chosen = run_stage(pretrain_stage(cfg, run_dir, train_videos, val_videos, rt, keep), rt, metrics, resume, stop, say)
                    say(selection_line(cfg.pretrain.select, chosen))
                    if rt.world > 1:
                        torch.distributed.barrier()  # every rank finetunes from the best.pt rank 0 has finished writing
                if stage in ("all", "finetune"):
                    run_stage(finetune_stage(cfg, run_dir, index, train_videos, val_videos, init, rt, say), rt, metrics, resume, stop, say)
            if stage in ("all", "eval") and rt.is_main:
                result = evaluate(cfg, run_dir, index, val_videos, rt, say, init)
                atomic_write(run_dir / EVAL_FILE, json.dumps(result, indent=2))
                say(eval_summary(result))
        finally:
            metrics.close()
            if rt.is_main:
                plot_curves(run_dir)
                refresh_report(run_dir, say)
    return run_dir
