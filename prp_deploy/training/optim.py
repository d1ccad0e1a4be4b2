"""Optimisers and learning-rate schedules for both stages: the paper's (SGD; plateau or step)
and the tiny preset's (Adam; cosine per step)."""

from __future__ import annotations

import math
from typing import Callable

import torch


def make_optimizer(groups: list[dict], stage_cfg) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam, with the stage's lr and weight decay."""
    if stage_cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=stage_cfg.lr, weight_decay=stage_cfg.weight_decay)
    return torch.optim.SGD(groups, lr=stage_cfg.lr, momentum=stage_cfg.momentum, weight_decay=stage_cfg.weight_decay)


def cosine_lambda(total_steps: int, warmup_fraction: float = 0.05) -> Callable[[int], float]:
    """lr factor at step k: linear warm-up over the first 5 % of steps, then cosine to zero."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(k: int) -> float:
        if k < warmup:
            return (k + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (k - warmup) / max(1, total_steps - warmup))))

    return factor


def steps_per_epoch(n_samples: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps in an epoch of n_samples split over `world` ranks."""
    return math.ceil(math.ceil(n_samples / world) / batch_size)


def make_scheduler(optimizer: torch.optim.Optimizer, stage_cfg, total_steps: int):
    """The stage's schedule. Cosine steps after every optimiser step; the paper's step per epoch
    (plateau on the validation loss in pretraining, StepLR in finetuning)."""
    if stage_cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lambda(total_steps))
    if stage_cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=stage_cfg.plateau_factor, patience=stage_cfg.plateau_patience)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=stage_cfg.step_size, gamma=stage_cfg.gamma)
