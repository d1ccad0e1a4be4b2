"""The epoch loop both stages share, read top to bottom.

    for each epoch:      train over the shuffled set (resumable mid-epoch)
                         validate → schedule the lr → log a metrics line
                         best.pt when validation improved, last.pt always
                         (epoch-N.pt too for the epochs the stage keeps)

A stage may make best.pt the mean of its last epochs' weights instead (`average_last`).

A stage brings its parts in one `Stage`: the model, optimiser and scheduler, the training
set, the step (batch → loss and counts) and the validation (model → metrics).

Checkpoints hold everything a resume needs: weights, optimiser, scheduler, the epoch and
the step inside it, the running sums of the epoch, the best score and torch's RNG. Data
randomness is a function of (seed, epoch, index) and the order of (seed, epoch), so a
resumed run sees the same batches an uninterrupted one would.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.nn.parallel import DistributedDataParallel

from ..data.loader import SkipCounter
from ..errors import PRPError
from ..rundir import load_checkpoint, save_checkpoint
from .common import EpochSampler, MetricsLog, Runtime, StopFlag, all_reduce_sum, make_loader, to_device


class Interrupted(Exception):
    """Ctrl-C during training: the state was saved to last.pt."""


@dataclass
class Stage:
    name: str  # "pretrain" | "finetune"
    out_dir: Path  # RUN/<name>/
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object  # per step (cosine: a LambdaLR built for the stage's steps) or per epoch (StepLR, ReduceLROnPlateau on val_loss)
    per_step_schedule: bool
    train_set: object  # a map-style dataset with set_epoch(epoch)
    step: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]  # (net, batch) → (loss, summed counts such as "correct")
    validate: Callable[[torch.nn.Module], dict]  # model → {"val_loss", ...}
    select: str  # the validation metric that picks best.pt
    select_mode: str  # "min" | "max"
    epochs: int
    batch_size: int
    seed: int
    workers: int
    max_bad_fraction: float
    checkpoint_extra: dict  # what the checkpoints carry beside the training state (configs, classes, ...)
    # Also write epoch-N.pt (weights and that epoch's record) for every epoch N >= keep_from
    # (0: all of them, epoch-0.pt being the init); None: none.
    keep_from: int | None = None
    # > 0: at the end best.pt becomes the mean of the last `average_last` epochs' weights
    # (kept for it as epoch-N.pt), validated like an epoch (pretrain.select average).
    average_last: int = 0


def _better(value: float, best: float | None, mode: str) -> bool:
    """Strictly better only: an equal or worse score never replaces best.pt."""
    if best is None:
        return True
    return value < best if mode == "min" else value > best


@dataclass
class _Progress:
    """Where a stage is: what last.pt holds beside the weights, optimiser and scheduler."""
    epoch: int = 0  # epochs finished
    step: int = 0  # steps into the current epoch
    best: float | None = None  # the best value of the stage's select metric so far
    sums: dict = field(default_factory=dict)  # the epoch's running sums (device tensors until saved)
    best_record: dict | None = None


def run_stage(stage: Stage, rt: Runtime, metrics: MetricsLog, resume: bool, stop: StopFlag,
              say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Train one stage to its last epoch; returns the best validation record."""
    last_path, best_path = stage.out_dir / "last.pt", stage.out_dir / "best.pt"
    averaged = averaged_epochs(stage.epochs, stage.average_last)
    at = _Progress()
    if resume and last_path.exists():
        at = _resumed(stage, last_path, say)
        if at.epoch >= stage.epochs:
            # The average again (the same weights) in case the stop came between the last epoch and it.
            return _average(stage, averaged, rt) if averaged else at.best_record or {}
    stage.out_dir.mkdir(parents=True, exist_ok=True)
    net = DistributedDataParallel(stage.model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None) if rt.world > 1 else stage.model
    sampler = EpochSampler(len(stage.train_set), stage.seed, shuffle=True, rank=rt.rank, world=rt.world)
    if at.epoch == 0 and at.step == 0:
        _keep(stage, rt, at, averaged, None)
    while at.epoch < stage.epochs:
        clips, seconds, skips = _train_epoch(stage, rt, net, sampler, at, stop)
        record = _epoch_record(stage, rt, at, clips, seconds, skips)
        at.epoch, at.step, at.sums = at.epoch + 1, 0, {}
        improved = _better(record[stage.select], at.best, stage.select_mode)
        if improved:
            at.best, at.best_record = record[stage.select], record
        record["best"] = improved
        if rt.is_main:
            metrics.write(record)
            say(_summary(record))
        if improved:
            _save(stage, rt, at, best_path)
        _keep(stage, rt, at, averaged, record)
        _save(stage, rt, at, last_path, finished=at.epoch >= stage.epochs)
    if not last_path.exists():  # zero epochs asked: still leave a checkpoint of the (initial) model
        _save(stage, rt, at, last_path, finished=True)
        _save(stage, rt, at, best_path, finished=True)
    return _average(stage, averaged, rt) if averaged else at.best_record or {}


def _resumed(stage: Stage, last_path: Path, say) -> _Progress:
    """The stage's model, optimiser, scheduler and torch's RNG as last.pt left them, and where it was."""
    state = load_checkpoint(last_path)
    if state.get("stage") != stage.name:
        raise PRPError(f"{last_path}: is a {state.get('stage')} checkpoint, not {stage.name}")
    stage.model.load_state_dict(state["model"])
    stage.optimizer.load_state_dict(state["optimizer"])
    stage.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    at = _Progress(state["epoch"], state["step"], state["best"], state["sums"], state.get("best_record"))
    if at.epoch >= stage.epochs:
        say(f"{stage.name}: already finished ({at.epoch} epochs), nothing to resume")
    else:
        say(f"{stage.name}: resuming at epoch {at.epoch + 1}, step {at.step}")
    return at


def _save(stage: Stage, rt: Runtime, at: _Progress, path: Path, finished: bool = False) -> None:
    if rt.is_main:
        save_checkpoint({**stage.checkpoint_extra, "stage": stage.name, "model": stage.model.state_dict(),
                         "optimizer": stage.optimizer.state_dict(), "scheduler": stage.scheduler.state_dict(), "rng": torch.get_rng_state(),
                         "epoch": at.epoch, "step": at.step, "best": at.best, "best_record": at.best_record, "sums": at.sums,
                         "finished": finished}, path)


def _keep(stage: Stage, rt: Runtime, at: _Progress, averaged: list[int], record: dict | None) -> None:
    # Weights and record only (no optimiser): enough to finetune, export or evaluate from any epoch.
    if rt.is_main and ((stage.keep_from is not None and at.epoch >= stage.keep_from) or at.epoch in averaged):
        save_checkpoint({**stage.checkpoint_extra, "stage": stage.name, "model": stage.model.state_dict(), "epoch": at.epoch,
                         "record": record, "finished": True}, stage.out_dir / f"epoch-{at.epoch}.pt")


def _train_epoch(stage: Stage, rt: Runtime, net, sampler: EpochSampler, at: _Progress, stop: StopFlag) -> tuple[int, float, SkipCounter]:
    """One epoch (from `at.step` on), its sums in `at`: (clips trained here, seconds, skipped videos).
    A stop saves last.pt and raises Interrupted."""
    stage.train_set.set_epoch(at.epoch)
    sampler.set_epoch(at.epoch, skip=at.step * stage.batch_size)
    loader = make_loader(stage.train_set, stage.batch_size, sampler, stage.workers, rt.device)
    skips = SkipCounter(stage.max_bad_fraction)
    net.train()
    t0 = time.perf_counter()
    clips_this_run = 0
    bar = _bar(len(loader), f"{stage.name} {at.epoch + 1}/{stage.epochs}", rt)
    steps_left_after = (stage.epochs - at.epoch - 1) * (len(loader) + at.step)  # the epochs after this one, for the stage's ETA
    try:
        for batch, skipped in loader:
            skips.add(stage.batch_size, skipped)
            if batch is None:
                continue
            n = _step(stage, rt, net, batch, at)
            clips_this_run += n
            if bar is not None:
                bar.update(1)
                if at.step % 10 == 0:
                    steps_per_s = bar.n / max(time.perf_counter() - t0, 1e-9)
                    eta = (bar.total - bar.n + steps_left_after) / max(steps_per_s, 1e-9)
                    bar.set_postfix_str(_postfix(at.sums, clips_this_run / (time.perf_counter() - t0), eta))
            if stop.set:
                break
    except RuntimeError:
        if not stop.set:  # a DataLoader worker killed by Ctrl-C surfaces as a RuntimeError
            raise
    finally:
        if bar is not None:
            bar.close()
    if stop.set:
        at.sums = {k: float(v) for k, v in at.sums.items()}
        _save(stage, rt, at, stage.out_dir / "last.pt")
        raise Interrupted(f"{stage.name} stopped at epoch {at.epoch + 1}, step {at.step}; state saved to {stage.out_dir / 'last.pt'}")
    skips.check()
    return clips_this_run, time.perf_counter() - t0, skips


def _step(stage: Stage, rt: Runtime, net, batch: dict, at: _Progress) -> int:
    """One optimiser step on one batch, its loss and counts added to the epoch's sums; the clips in it."""
    batch = to_device(batch, rt.device, rt.channels_last)
    with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
        loss, stats = stage.step(net, batch)
    stage.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    stage.optimizer.step()
    if stage.per_step_schedule:
        stage.scheduler.step()
    n = batch["clip"].shape[0]
    # Running sums stay on the device: .item() per step would sync the GPU every step.
    for k, v in {"loss": loss.detach() * n, "clips": torch.tensor(float(n)), **stats}.items():
        at.sums[k] = at.sums.get(k, 0.0) + v.detach().double()
    at.step += 1
    return n


def _epoch_record(stage: Stage, rt: Runtime, at: _Progress, clips_this_run: int, train_time: float, skips: SkipCounter) -> dict:
    """The epoch's metrics line (its sums over every process, then validation); the lr scheduled on."""
    keys = sorted(at.sums)
    totals = dict(zip(keys, all_reduce_sum([float(at.sums[k]) for k in keys], rt)))
    clips = max(totals.get("clips", 0.0), 1.0)
    record = {"stage": stage.name, "epoch": at.epoch + 1, "train_loss": totals.get("loss", 0.0) / clips,
              **{f"train_{k}": v / clips for k, v in totals.items() if k not in ("loss", "clips", "correct")},
              **({"train_accuracy": 100.0 * totals["correct"] / clips} if "correct" in totals else {}),
              "lr": stage.optimizer.param_groups[0]["lr"], "clips_per_s": clips_this_run * rt.world / max(train_time, 1e-9),
              "skipped_videos": skips.skipped}
    record.update(stage.validate(stage.model))
    if isinstance(stage.scheduler, ReduceLROnPlateau):
        stage.scheduler.step(record["val_loss"])
    elif not stage.per_step_schedule:  # a per-step schedule already stepped after every optimiser step
        stage.scheduler.step()
    return record


def averaged_epochs(epochs: int, last: int) -> list[int]:
    """The epochs an `average_last` stage takes the mean of: the last `last` (fewer in a shorter run)."""
    return list(range(max(1, epochs - last + 1), epochs + 1)) if last > 0 else []


def mean_weights(states: list[dict]) -> dict:
    """The elementwise mean of state dicts (BatchNorm running statistics included; integer
    counters such as num_batches_tracked are the last one's)."""
    last = states[-1]
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in last.items()}


def _average(stage: Stage, epochs: list[int], rt: Runtime) -> dict:
    """best.pt := the mean of the kept epochs' weights, validated like an epoch; returns its record.

    Averaging the last epochs of a schedule that decays to zero smooths what one epoch's noise
    (its last batches, its validation draw) would otherwise decide (measured in docs/results.md)."""
    if rt.world > 1:
        torch.distributed.barrier()  # rank 0 has written the epochs averaged
    kept = [load_checkpoint(stage.out_dir / f"epoch-{e}.pt") for e in epochs]
    stage.model.load_state_dict(mean_weights([k["model"] for k in kept]))
    record = {"stage": stage.name, "epoch": epochs[-1], "averaged_epochs": list(epochs), **stage.validate(stage.model)}
    if rt.is_main:
        save_checkpoint({**stage.checkpoint_extra, "stage": stage.name, "model": stage.model.state_dict(), "epoch": epochs[-1],
                         "averaged_epochs": list(epochs), "best": epochs[-1], "best_record": record, "finished": True},
                        stage.out_dir / "best.pt")
    return record


def _bar(total: int, desc: str, rt: Runtime):
    if not rt.is_main:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=None, leave=False, file=sys.stderr)


def _postfix(sums: dict, rate: float, stage_eta_s: float) -> str:
    n = float(sums.get("clips", 1.0)) or 1.0
    parts = [f"loss {float(sums.get('loss', 0.0)) / n:.4f}"]
    if "correct" in sums:
        parts.append(f"acc {100 * float(sums['correct']) / n:.1f}%")
    parts.append(f"{rate:.0f} clips/s")
    parts.append(f"stage ETA {int(stage_eta_s) // 60}:{int(stage_eta_s) % 60:02d}")
    return " ".join(parts)


def _summary(r: dict) -> str:
    keys = [k for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_rate_accuracy") if k in r]
    body = " ".join(f"{k}={r[k]:.4f}" for k in keys)
    return f"{r['stage']} epoch {r['epoch']}: {body} lr={r['lr']:.2g} {r['clips_per_s']:.0f} clips/s" + (" *best*" if r.get("best") else "")
