"""Sweep presets compose, and a tiny real multirun (two mechanisms) gives a complete report."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, compose, tiny_overrides

from nmt.models.mechanisms import MECHANISMS
from nmt.report import make_report

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses

VARIANTS = (*MECHANISMS, "transformer")


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_presets_sweep_every_mechanism_once(preset):
    conf = yaml.safe_load((ROOT / "conf" / "sweep" / f"{preset}.yaml").read_text())
    hydra = conf["hydra"]
    assert hydra["sweeper"]["params"]["+variant"].split(",") == list(VARIANTS)  # Transformer once
    assert hydra["sweep"]["dir"] == f"multirun/sweep-{preset}"  # fixed: a re-run resumes
    assert hydra["sweep"]["subdir"] == "${hydra.job.override_dirname}"
    cfg = compose([f"+sweep={preset}", "+variant=local_p"])
    assert cfg["data"]["name"] == "multi30k"
    assert cfg["trainer"]["max_time"] > 0  # every preset states a budget


def _hydra(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import nmt.train  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def test_cpu_preset_fits_two_cores_and_cpu3_adds_seeds():
    """Two single-thread runs at a time; cpu3 is the same preset with seeds 1,2,3."""
    cpu, cpu3 = _hydra(["+sweep=cpu"]), _hydra(["+sweep=cpu3"])
    assert "joblib" in cpu.hydra.launcher._target_.lower()
    assert cpu.hydra.launcher.n_jobs * cpu.trainer.threads <= 2
    assert cpu3.hydra.sweeper.params["seed"] == "1,2,3"
    assert cpu3.hydra.sweeper.params["+variant"] == cpu.hydra.sweeper.params["+variant"]
    assert cpu3.hydra.sweep.dir == "multirun/sweep-cpu3" != cpu.hydra.sweep.dir
    assert cpu3.trainer == cpu.trainer and cpu3.model == cpu.model and cpu3.data == cpu.data


def test_sparse_preset_adds_normalizers_beside_the_cpu_softmax_runs():
    """Every RNN mechanism with sparsemax and 1.5-entmax, the cpu preset's recipe, its folder."""
    cpu, sparse = _hydra(["+sweep=cpu"]), _hydra(["+sweep=sparse"])
    params = sparse.hydra.sweeper.params
    assert params["attention.normalizer"] == "sparsemax,entmax15"
    rnn = [v for v in cpu.hydra.sweeper.params["+variant"].split(",") if v != "transformer"]
    assert params["+variant"].split(",") == rnn
    assert sparse.hydra.sweep.dir == cpu.hydra.sweep.dir  # reported beside the softmax runs
    assert sparse.trainer == cpu.trainer and sparse.data == cpu.data
    cfg = compose(["+sweep=sparse", "+variant=local_p", "attention.normalizer=entmax15"])
    assert cfg["attention"]["normalizer"] == "entmax15"


def test_hard_preset_adds_both_estimators_beside_the_cpu_soft_runs():
    """Every RNN mechanism with REINFORCE and Gumbel-softmax hard attention, the cpu preset's
    recipe, its folder."""
    cpu, hard = _hydra(["+sweep=cpu"]), _hydra(["+sweep=hard"])
    params = hard.hydra.sweeper.params
    assert params["attention.hard"] == "reinforce,gumbel"
    rnn = [v for v in cpu.hydra.sweeper.params["+variant"].split(",") if v != "transformer"]
    assert params["+variant"].split(",") == rnn
    assert hard.hydra.sweep.dir == cpu.hydra.sweep.dir
    assert hard.trainer == cpu.trainer and hard.data == cpu.data
    cfg = compose(["+sweep=hard", "+variant=local_m", "attention.hard=gumbel"])
    assert cfg["attention"]["hard"] == "gumbel" and cfg["attention"]["type"] == "local_m"
    # the soft-to-hard curriculum survives the variant's attention group
    assert (cfg["attention"]["soft_mix"], cfg["attention"]["soft_mix_anneal"]) == (1.0, 0.5)


def test_align_preset_trains_every_variant_both_ways_on_a_step_budget():
    """Every mechanism and the Transformer, both directions, unguided and guided, two
    single-thread runs at a time, on the same number of steps and tokens (not wall clock, so
    the AER of a run does not depend on the machine's speed)."""
    align = _hydra(["+sweep=align"])
    params = align.hydra.sweeper.params
    assert params["+variant"].split(",") == list(VARIANTS)
    assert params["+direction"] == "de-en,en-de"
    assert params["trainer.guided_alignment.weight"].split(",")[0] == "0"
    assert align.hydra.launcher.n_jobs * align.trainer.threads <= 2
    for variant in ("luong_general", "transformer"):  # the model yaml's max_tokens is overridden
        cfg = compose(["+sweep=align", f"+variant={variant}", "+direction=en-de"])
        t = cfg["trainer"]
        assert (t["max_steps"], t["max_tokens"], t["max_time"]) == (3600, 2048, None)
        assert t["max_steps"] // t["validate_every"] <= t["keep_last"]  # every checkpoint kept
        assert (cfg["data"]["src_lang"], cfg["data"]["lowercase"]) == ("en", True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants(variant):
    cfg = compose(["+sweep=cpu", f"+variant={variant}"])
    if variant == "transformer":
        assert cfg["model"]["arch"] == "transformer"
    else:
        assert (cfg["model"]["arch"], cfg["attention"]["type"]) == ("rnn", variant)


@pytest.mark.parametrize("launcher,target", [("parallel", "joblib"), ("slurm", "submitit")])
def test_launcher_configs(launcher, target):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import nmt.train  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(
            "config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True
        )
    assert target in cfg.hydra.launcher._target_.lower()


def _multirun(tmp: Path, sweep: str = "attention=bahdanau,luong_dot", **extra: str):
    tiny = tiny_overrides(tmp, **{"trainer.max_steps": "8", "trainer.validate_every": "4", **extra})
    keys = ",".join(o.split("=", 1)[0] for o in tiny)
    cmd = [
        sys.executable, "-m", "nmt.train", "-m", sweep, *tiny,
        f"hydra.sweep.dir={tmp / 'multirun' / 'tiny'}",
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
        f"hydra.job.config.override_dirname.exclude_keys=[resume,sweep,{keys}]",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # failures: recorded
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    """One real multirun (bahdanau, luong_dot) shared by the tests below."""
    tmp = tmp_path_factory.mktemp("sweep")
    _multirun(tmp)
    return tmp


def test_tiny_multirun_report(tiny_sweep, tmp_path):
    sweep = tiny_sweep / "multirun" / "tiny"
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["attention=bahdanau", "attention=luong_dot"]
    # an incomplete run beside it: a copy without metrics.json
    other = tiny_sweep / "multirun" / "other" / "attention=luong_dot"
    shutil.copytree(sweep / "attention=luong_dot", other, ignore=shutil.ignore_patterns("*.pt"))
    (other / "metrics.json").unlink()

    result = make_report([tiny_sweep / "multirun"], tmp_path / "report")
    with open(tmp_path / "report" / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["mechanism"] for r in rows if r["status"].startswith("done")) == [
        "bahdanau",
        "luong_dot",
    ]
    assert [r["status"].split(":")[0] for r in rows if not r["status"].startswith("done")] == [
        "incomplete"
    ]
    for r in rows[:2]:
        for col in (
            "params",
            "dev_bleu",
            "test_bleu",
            "test_chrf",
            "train_tokens_per_s",
            "decode_sents_per_s",
            "wall_s",
        ):
            assert float(r[col]) >= 0, col
        assert r["steps"] == "8.0" and r["model"] == "rnn"
    md = result["text"]
    assert md.count("| rnn |") == 3  # two leaderboard rows and the unfinished run
    for name in ("bleu_by_length.png", "attention_grid.png", "dev_bleu_vs_time.png"):
        path = tmp_path / "report" / "figures" / name
        assert path in result["figures"] and path.stat().st_size > 1000, name
        assert f"figures/{name}" in md


def test_rerun_skips_finished_runs(tiny_sweep):
    sweep = tiny_sweep / "multirun" / "tiny"
    done = sweep / "attention=bahdanau" / "metrics.json"
    before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    # pretend one run was interrupted: only that one is trained (resumed) again
    done.write_text(done.read_text().replace('"interrupted": false', '"interrupted": true'))
    _multirun(tiny_sweep)
    after = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    kept = sweep / "attention=luong_dot" / "metrics.json"
    assert after[kept] == before[kept]  # finished: skipped
    assert '"interrupted": false' in done.read_text()


def test_failed_run_is_reported_and_the_sweep_goes_on(tmp_path):
    # luong_location needs attention.max_src_len > data.max_len: that run fails at start-up
    extra = {"attention.max_src_len": "8", "trainer.max_steps": "4"}
    _multirun(tmp_path, "attention=luong_location,bahdanau", **extra)
    result = make_report([tmp_path / "multirun"], tmp_path / "report", heatmaps=False)
    status = {r.mechanism: r.status for r in result["runs"]}
    assert status == {"luong_location": "failed", "bahdanau": "done"}
    assert "attention.max_src_len" in result["unfinished"][0].detail
