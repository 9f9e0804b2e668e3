"""Learning-rate schedules: the budget schedule (Li, Yumer & Ramanan 2020) reaches its floor
exactly when the budget runs out, and a resumed run continues with the same learning rates."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import compose, cut_and_resume, tiny_overrides

from nmt.config import ConfigError, TrainerConfig, to_dataclass
from nmt.optim import BudgetSchedule, budget_lr, budget_used


def test_budget_lr_warms_up_then_decays_linearly_to_the_floor():
    floor = 0.01
    assert [budget_lr(s, 0.0, 4, floor) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    decay = [budget_lr(100, u / 10, 4, floor) for u in range(11)]
    assert decay[0] == 1.0 and decay[-1] == pytest.approx(floor)
    steps = [a - b for a, b in zip(decay, decay[1:])]
    assert all(d == pytest.approx(steps[0]) for d in steps)  # linear
    assert budget_lr(100, 1.7, 4, floor) == pytest.approx(floor)  # past the budget: the floor


def test_budget_used_is_the_budget_that_runs_out_first():
    t = TrainerConfig(max_steps=100, max_time=None)
    assert budget_used(25, 999.0, t) == 0.25
    t = replace(t, max_steps=None, max_time=200.0)
    assert budget_used(25, 50.0, t) == 0.25
    t = replace(t, max_steps=100)
    assert budget_used(10, 150.0, t) == 0.75 and budget_used(90, 10.0, t) == 0.9


def test_budget_schedule_needs_a_budget(tmp_path):
    over = tiny_overrides(
        tmp_path,
        **{"trainer.schedule": "budget", "trainer.max_steps": "null", "trainer.max_time": "null"},
    )
    with pytest.raises(ConfigError, match="trainer.schedule=budget needs"):
        to_dataclass(compose(over + ["trainer.max_epochs=3"]))


@pytest.mark.parametrize(
    "model,budget,expected",
    [
        ("rnn", {"trainer.max_time": "300"}, "budget"),
        ("transformer", {"trainer.max_steps": "50", "trainer.max_time": "null"}, "budget"),
        ("rnn", {"trainer.max_time": "null", "trainer.max_steps": "null"}, "plateau"),
        ("transformer", {"trainer.max_time": "null", "trainer.max_steps": "null"}, "inverse_sqrt"),
    ],
)
def test_auto_schedule_is_the_budget_schedule_whenever_a_budget_is_given(model, budget, expected):
    cfg = to_dataclass(compose([f"model={model}", *(f"{k}={v}" for k, v in budget.items())]))
    assert cfg.trainer.schedule == expected


def test_an_explicit_schedule_is_kept_under_a_budget():
    cfg = to_dataclass(compose(["trainer.max_time=300", "trainer.schedule=constant"]))
    assert cfg.trainer.schedule == "constant"


def test_schedule_object_reads_progress_and_survives_a_state_round_trip():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    done = [0]

    sched = BudgetSchedule(opt, lambda just: 1.0 - (done[0] + just) / 10)
    assert opt.param_groups[0]["lr"] == 0.5  # before any update
    sched.step()  # after the first update, before the trainer counts it
    assert opt.param_groups[0]["lr"] == pytest.approx(0.45)
    done[0] = 1
    state = sched.state_dict()
    other = BudgetSchedule(torch.optim.SGD([p], lr=0.5), lambda just: 1.0 - (done[0] + just) / 10)
    other.load_state_dict(state)
    assert other.optimizer.param_groups[0]["lr"] == pytest.approx(0.45)


BUDGET = {
    "trainer.schedule": "budget",
    "trainer.max_steps": "20",
    "trainer.warmup_steps": "3",
    "trainer.min_lr": "3e-5",  # floor = min_lr / lr = 0.01
    "trainer.validate_every": "5",
    "trainer.patience": "null",
    "trainer.test_at_end": "false",
    "trainer.num_heatmaps": "0",
    "trainer.threads": "1",
    "model.dropout": "0.3",  # random masks: a resume must restore the generators too
}


def _records(run) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "progress.jsonl").open())}


def test_budget_run_reaches_the_floor_and_resumes_bit_exactly(tmp_path):
    from nmt.trainer import Trainer

    threads = torch.get_num_threads()
    try:
        cfg = to_dataclass(compose(tiny_overrides(tmp_path, **BUDGET)))
        Trainer(cfg, tmp_path / "whole").fit()
        cut_and_resume(cfg, tmp_path / "cut")
    finally:
        torch.set_num_threads(threads)
    whole, cut_records = _records(tmp_path / "whole"), _records(tmp_path / "cut")
    assert sorted(whole) == sorted(cut_records) == list(range(1, 21))
    for step in range(11, 21):  # after the resume: the same lr and the same loss, bit for bit
        assert cut_records[step]["lr"] == whole[step]["lr"], step
        assert cut_records[step]["loss"] == whole[step]["loss"], step
    lrs = [whole[s]["lr"] for s in range(1, 21)]
    assert lrs[-1] == pytest.approx(3e-5)  # the floor, exactly when the budget runs out
    peak = lrs.index(max(lrs))
    assert peak == 1 and all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
