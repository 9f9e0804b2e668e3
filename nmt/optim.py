"""Optimizer and learning-rate schedules, built from `trainer.*` (nmt.config.TrainerConfig)."""

from __future__ import annotations

import math

import torch
from torch import nn

from nmt.config import Config


def inverse_sqrt_lr(step: int, warmup: int) -> float:
    """LR multiplier: linear warm-up to 1.0 at `warmup`, then sqrt(warmup / step) (Vaswani sec. 5.3).

    `step` counts optimizer updates from 1; step 0 is treated as step 1 so the first update
    does not get a zero learning rate. `warmup <= 0` means no warm-up (1.0 at step 1).
    """
    warmup = max(int(warmup), 1)
    step = max(int(step), 1)
    return min(step / warmup, math.sqrt(warmup / step))


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    t = cfg.trainer
    kind = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: Config):
    """Reduce-on-plateau (stepped on dev BLEU), inverse square root with warm-up, or constant."""
    t = cfg.trainer
    if t.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr
        )
    if t.schedule == "inverse_sqrt":
        # Vaswani 2017, eq. 3 (scaled to peak lr): linear warm-up then 1/sqrt(step)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: inverse_sqrt_lr(s + 1, t.warmup_steps)
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
