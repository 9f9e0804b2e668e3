"""Optimizer and learning-rate schedules, built from `trainer.*` (nmt.config.TrainerConfig)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nmt.config import Config, TrainerConfig


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
    # fused: one kernel per parameter for the whole update instead of ~10 passes over it
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    return kind(
        model.parameters(),
        lr=t.lr,
        betas=tuple(t.betas),
        weight_decay=t.weight_decay,
        fused=fused or None,
    )


def budget_lr(step: int, used: float, warmup: int, floor: float) -> float:
    """LR multiplier under a fixed budget (Li, Yumer & Ramanan 2020, "Budgeted Training"):
    linear warm-up over `warmup` updates, and a linear decay from 1 to `floor` as the fraction
    `used` of the budget goes from 0 to 1; the smaller of the two."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    decay = floor + (1.0 - floor) * max(0.0, 1.0 - used)
    return min(warm, decay)


def budget_used(step: int, train_time: float, t: TrainerConfig) -> float:
    """The fraction of the budget spent: steps of `max_steps` or seconds of `max_time`,
    whichever runs out first."""
    parts = [step / t.max_steps] if t.max_steps else []
    parts += [train_time / t.max_time] if t.max_time else []
    return max(parts, default=0.0)


class BudgetSchedule:
    """Sets every group's lr to its base lr x `multiplier(updates done)`.

    The multiplier is a pure function of the run's progress (updates and training seconds,
    both saved in checkpoints), so a resumed run continues with exactly the lr it would have
    had. `step()` runs right after an update, before the trainer counts it: hence the + 1.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: Callable[[int], float]):
        self.optimizer, self.multiplier = optimizer, multiplier
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self._apply(0)

    def step(self) -> None:
        self._apply(1)

    def _apply(self, just_done: int) -> None:
        m = self.multiplier(just_done)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * m

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])
        self._apply(0)


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: Config, progress: Callable[[], tuple[int, float]] | None = None
):
    """Reduce-on-plateau (stepped on dev BLEU), inverse square root with warm-up, the budget
    schedule (`progress()` gives the run's (step, training seconds)), or constant."""
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
    if t.schedule == "budget":
        if progress is None:
            raise ValueError("trainer.schedule=budget needs the run's progress")

        def multiplier(just_done: int) -> float:
            step, seconds = progress()
            step += just_done  # updates done, counting the one that just finished
            return budget_lr(step, budget_used(step, seconds, t), t.warmup_steps, t.min_lr / t.lr)

        return BudgetSchedule(opt, multiplier)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
