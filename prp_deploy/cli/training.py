"""The training side of the command: `train` (pretrain, finetune, evaluate), `eval` on another dataset, `report`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..clitypes import CommaList
from ..errors import PRPError, UsageError
from ..models.registry import BACKBONES, DEPTHS

from .common import check_new_file, say


@click.command("train", context_settings={"show_default": True})
@click.option("--stage", type=click.Choice(["all", "pretrain", "finetune", "eval"]), default="all", show_default=True)
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=None, help="Dataset root (default: the built-in synthetic dataset).")
@click.option("--dataset", type=click.Choice(["ucf101", "hmdb51", "folder"]), default=None,
              help="Layout of --data: ucf101 (UCF-101/ + ucfTrainTestlist/), hmdb51 (hmdb51_org/ + split files) or folder "
                   "(<class>/<video>). Default: ucf101.")
@click.option("--split", type=click.IntRange(1, 3), default=None, help="Train/test split 1-3 of the dataset. Default: 1.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default=None)
@click.option("--depth", type=click.Choice([str(d) for d in DEPTHS]), default=None)
@click.option("--width", type=float, default=None, help="Channel multiplier (1.0 = the paper's network).")
@click.option("--frames", type=int, default=None, help="Clip length T (a multiple of the backbone's temporal stride: 8 here).")
@click.option("--crop", type=int, default=None, help="Crop size (a multiple of the backbone's spatial stride: 16 here).")
@click.option("--short-side", type=int, default=None, help="Frames are resized to this short side before cropping.")
@click.option("--objective", type=click.Choice(["dgp", "dp", "gp", "none"]), default=None, help="none = random init (the paper's baseline).")
@click.option("--intervals", type=CommaList(int), default=None, help="Playback rates S, e.g. 1,2,4,8.")
@click.option("--rec-rate", type=click.Choice(["1", "2", "4"]), default=None, help="Reconstruction (slow-down) rate r.")
@click.option("--motion-attention/--no-motion-attention", default=None)
@click.option("--pretrain-epochs", type=click.IntRange(0), default=None)
@click.option("--finetune-epochs", type=click.IntRange(0), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="For both stages.")
@click.option("--workers", type=click.IntRange(0), default=None, help="DataLoader worker processes.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default runs/<date>-<backbone>-<objective>).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None, help="YAML config; flags override it.")
@click.option("--preset", type=click.Choice(["tiny", "paper"]), default=None, help="Default: tiny without --data, paper with it.")
@click.option("--val-videos", type=click.IntRange(0), default=None, help="Held out of the training list (capped at 15 %).")
@click.option("--labels-per-class", type=click.IntRange(1), default=None,
              help="Finetune on this many labelled training videos per class; the rest stay unlabelled (tiny preset: 16).")
@click.option("--label-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Finetune on this fraction of each class's training videos (1 = every label).")
@click.option("--subtract-mean/--no-subtract-mean", default=None,
              help="The encoder centres each pixel over the clip's time first (tiny preset: on; the paper: off).")
@click.option("--select", type=click.Choice(["val_loss", "rate_accuracy", "last", "average"]), default=None,
              help="Which pretraining encoder becomes pretrain/best.pt (finetuning's start): the epoch of lowest val loss "
                   "(the paper's code), of highest val playback-rate accuracy, the last, or the mean of the last 3 epochs' "
                   "weights. Default: the preset's (pretrain.select).")
@click.option("--init", "--init-from", "init", type=click.Path(path_type=Path), default=None,
              help="Checkpoint whose encoder a finetune starts from (instead of this run's pretrain/best.pt).")
@click.option("--keep-epochs", is_flag=True,
              help="Also keep every pretraining epoch's weights as pretrain/epoch-N.pt (epoch-0.pt: the init), to finetune, "
                   "export or evaluate any of them (--init-from, prp-deploy eval).")
@click.option("--resume", is_flag=True, help="Continue the stage in progress from its last.pt (with --out, else the newest run).")
def train_cmd(stage, data_root, dataset, split, backbone, depth, width, frames, crop, short_side, objective, intervals, rec_rate,
              motion_attention, pretrain_epochs, finetune_epochs, batch_size, workers, device, seed, out, config_file, preset,
              val_videos, labels_per_class, label_fraction, subtract_mean, select, init, keep_epochs, resume):
    """Pretrain with PRP, finetune for action recognition, evaluate (recognition, retrieval, pretext).

    An option left out takes the preset's value: --preset tiny without --data (R(2+1)D-10 x0.25,
    8x32x32 clips, Adam, 7 + 5 epochs), the paper's settings with it (R(2+1)D-10, 16x112x112,
    SGD, 300 + 150 epochs); config.yaml in the run folder records every value used."""
    from dataclasses import replace

    from ..rundir import newest_run
    from ..training.config_files import build_config, load_run_config
    from ..training.loop import Interrupted
    from ..training.pipeline import train
    from ..training.resume import refuse_changes

    def given(**kw):
        return {k: v for k, v in kw.items() if v is not None}

    if labels_per_class is not None and label_fraction is not None:
        raise PRPError("give --labels-per-class or --label-fraction, not both")
    budget = {"labels_per_class": labels_per_class, "label_fraction": label_fraction}  # one label budget replaces the other
    budget = budget if labels_per_class is not None or label_fraction is not None else {}
    overrides = {
        "model": given(backbone=backbone, depth=int(depth) if depth else None, width=width, subtract_mean=subtract_mean),
        "data": {**given(data=str(data_root) if data_root else None, dataset=dataset, split=split, workers=workers, val_videos=val_videos),
                 **({"preprocess": p} if (p := given(frames=frames, crop=crop, short_side=short_side)) else {})},
        "pretrain": given(objective=objective, intervals=intervals, rec_rate=int(rec_rate) if rec_rate else None,
                          motion_attention=motion_attention, epochs=pretrain_epochs, batch_size=batch_size, select=select),
        "finetune": {**given(epochs=finetune_epochs, batch_size=batch_size), **budget},
        **given(seed=seed, device=device),
    }
    overrides = {k: v for k, v in overrides.items() if v != {}}
    if resume:
        out = out or newest_run()
        cfg = load_run_config(out)
        refuse_changes(cfg, out, overrides, config_file, preset, init)
        # Only what does not change the result so far may differ on resume: device, workers, and more epochs.
        cfg = replace(
            cfg,
            device=device or cfg.device,
            data=replace(cfg.data, workers=workers if workers is not None else cfg.data.workers),
            pretrain=replace(cfg.pretrain, epochs=pretrain_epochs if pretrain_epochs is not None else cfg.pretrain.epochs),
            finetune=replace(cfg.finetune, epochs=finetune_epochs if finetune_epochs is not None else cfg.finetune.epochs),
        )
    else:
        if data_root is not None and not Path(data_root).exists():
            raise PRPError(f"{data_root}: no such dataset folder")
        cfg = build_config(preset, config_file, overrides)
    try:
        run_dir = train(cfg, stage=stage, out=out, init=init, resume=resume, say=say, keep_epochs=keep_epochs)
    except Interrupted as e:
        say(f"interrupted: {e}; continue with: prp-deploy train --resume --out {out or 'RUN'}")
        sys.exit(130)
    click.echo(str(run_dir))


@click.command("eval")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--data", "data_root", type=click.Path(path_type=Path), default=None, help="Dataset root (default: the built-in synthetic dataset).")
@click.option("--dataset", type=click.Choice(["ucf101", "hmdb51", "folder"]), default=None, help="The root's layout (see `data`).")
@click.option("--split", type=click.IntRange(1, 3), default=1, show_default=True)
@click.option("--clips", type=click.IntRange(1), default=None, help="Clips per test video (default: the run's, 10).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Result JSON (default: RUN/eval-<dataset>-<folder>.json).")
def eval_cmd(source, data_root, dataset, split, clips, out):
    """Evaluate a checkpoint (RUN, or RUN/<stage>/X.pt) on another dataset: the pretext's playback-rate
    accuracy for a pretrained encoder, recognition for a finetuned model of the same classes, and
    retrieval (test videos query the training videos) for either."""
    try:
        from ..training.crosseval import evaluate_on, summary
    except ImportError as e:
        raise PRPError(f"eval needs the train extra (torch): pip install 'prp-deploy[train]' ({e.name} missing)") from None
    if data_root is not None and dataset is None:
        raise UsageError("--data needs --dataset (ucf101, hmdb51 or folder)")
    check_new_file(out, "--out", (".json",), [source, data_root])  # before minutes of evaluation, not after
    result, path = evaluate_on(source, str(data_root) if data_root else None, dataset, split, out, clips, say)
    say(summary(result))
    say(f"wrote {path}")


@click.command("report")
@click.argument("run", type=click.Path(path_type=Path), required=False)
def report_cmd(run):
    """Write RUN/report.html (default: the newest run): one self-contained page of the run's results,
    curves, confusion matrices, retrieval examples, explain maps, parity and bench."""
    from ..paths import newest_run
    from ..reports.html import write_report

    run = run or newest_run()
    if not Path(run).is_dir():
        raise PRPError(f"{run}: no such run folder")
    say(f"wrote {write_report(run, say)}")
