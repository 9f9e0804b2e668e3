"""Configuration errors: one line naming the key and what is allowed, before any data is read;
and the configuration a resumed run uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose, tiny_overrides
from omegaconf import OmegaConf

from nmt.config import ConfigError, to_dataclass
from nmt.models import check_config
from nmt.train import precheck, resume_config, truncate_jsonl

# overrides -> texts the single error line must contain
CLI_CASES: dict[str, tuple[list[str], list[str]]] = {
    "unknown key": (
        ["trainer.foo=1"],
        ["trainer.foo", "unknown key", "max_steps", "nan_tolerance"],
    ),
    "unknown top-level key": (["foo=1"], ["foo", "unknown key", "trainer"]),
    "unknown model key": (["model=transformer", "model.cell=gru"], ["model.cell", "d_model"]),
    "wrong type": (["trainer.lr=fast"], ["trainer.lr", "'fast'", "Float"]),
    "wrong type int": (["data.vocab_size=1.5"], ["data.vocab_size", "Integer"]),
    "local window < 1": (
        ["attention=local_p", "attention.window=0"],
        ["attention.window=0", ">= 1"],
    ),
    "d_model % heads": (
        ["model=transformer", "model.d_model=30", "model.heads=4"],
        ["model.d_model=30", "heads=4"],
    ),
    "beam 0": (["decode.beam=0"], ["decode.beam=0", ">= 1"]),
    "bad choice": (["trainer.optimizer=sgd"], ["trainer.optimizer='sgd'", "adam, adamw"]),
    "missing group option": (
        ["attention=luong_fancy"],
        ["attention=luong_fancy", "luong_dot", "local_m"],
    ),
    "sweep without -m": (["trainer.lr=1e-3,3e-4"], ["trainer.lr", "--multirun"]),
}


def _train(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nmt.train", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
    )


AS_PROCESS = ("unknown key", "d_model % heads", "missing group option")


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_precheck_gives_one_line_naming_the_key(tmp_path, name):
    overrides, expected = CLI_CASES[name]
    with pytest.raises(ConfigError) as err:
        precheck(["data=reverse", f"data.root={tmp_path / 'data'}", *overrides])
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, (text, message)
    assert not (tmp_path / "data").exists()


def test_valid_command_lines_pass_the_precheck(tmp_path):
    precheck(tiny_overrides(tmp_path))
    precheck(["-m", "trainer.lr=1e-3,3e-4", "decode.beam=1"])
    # in a sweep, a bad combination fails that run only (nmt-report lists it), not the sweep
    precheck(["-m", "attention=luong_location,bahdanau", "attention.max_src_len=8"])
    precheck(["--help"])
    precheck(["hydra/launcher=parallel", "hydra.run.dir=/tmp/x", "decode.beam=1"])
    assert not (tmp_path / "data").exists()


def test_a_sweep_with_an_unknown_key_or_option_fails_at_once():
    with pytest.raises(ConfigError, match="trainer.foo: unknown key"):
        precheck(["-m", "trainer.foo=1,2"])
    with pytest.raises(ConfigError, match="attention=luong_fancy: no such option"):
        precheck(["-m", "attention=luong_fancy,bahdanau"])


@pytest.mark.slow
def test_config_errors_are_one_line_before_any_data_is_read(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    base = ["data=reverse", f"data.root={data}", f"hydra.run.dir={run}"]
    procs = {name: _train(base + CLI_CASES[name][0]) for name in AS_PROCESS}
    # its own run folder: with HYDRA_FULL_ERROR=1 Hydra may start the job (and make its folder)
    full_base = ["data=reverse", f"data.root={data}", f"hydra.run.dir={tmp_path / 'run_full'}"]
    full = _train(full_base + ["decode.beam=0"], {"HYDRA_FULL_ERROR": "1"})
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, err)
        assert "Traceback" not in err, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nmt-train: error: "), (name, err)
        for text in CLI_CASES[name][1]:
            assert text in lines[0], (name, text, lines[0])
    assert not data.exists(), "the synthetic corpus was written: data was prepared before the check"
    assert not run.exists(), "a run folder was created for an invalid configuration"
    _, err = full.communicate(timeout=300)
    assert full.returncode != 0 and "Traceback" in err and "decode.beam=0" in err


@pytest.mark.parametrize(
    "change, key",
    [
        ({"trainer": {"max_tokens": "many"}}, "'many'"),  # names the value, not the key
        ({"trainer": {"bogus": 1}}, "bogus"),
        ({"attention": {"type": "local_m", "window": 0}}, "attention.window"),
        ({"model": {"arch": "lstm"}}, "model.arch"),
        ({"decode": {"beam": 0}}, "decode.beam"),
        ({"data": {"max_len": 0}}, "data.max_len"),
    ],
)
def test_to_dataclass_errors_are_one_line(tmp_path, change, key):
    """to_dataclass, then the mechanism table's checks (nmt.models.check_config): both run
    before any data is read, at `nmt-train` start-up and in the Trainer."""
    cfg = OmegaConf.merge(OmegaConf.create(compose(tiny_overrides(tmp_path))), change)
    with pytest.raises(ConfigError) as err:
        check_config(to_dataclass(OmegaConf.to_container(cfg)))
    assert "\n" not in str(err.value) and key.split(".")[-1] in str(err.value), str(err.value)


def _saved(tmp_path: Path) -> dict:
    import dataclasses

    return dataclasses.asdict(to_dataclass(compose(tiny_overrides(tmp_path))))


def test_resume_uses_the_saved_config_plus_explicit_keys(tmp_path):
    saved = _saved(tmp_path)
    composed = OmegaConf.create(
        compose(["trainer.max_steps=99", "decode.beam=3"])
    )  # defaults elsewhere
    out = resume_config(saved, composed, ["trainer.max_steps", "decode.beam"])
    assert out["trainer"]["max_steps"] == 99 and out["decode"]["beam"] == 3
    assert out["data"] == saved["data"] and out["model"] == saved["model"]  # not the defaults
    assert out["trainer"]["lr"] == saved["trainer"]["lr"]
    moved = OmegaConf.create(compose(tiny_overrides(tmp_path / "elsewhere")))
    assert resume_config(saved, moved, ["data.root"])["data"]["root"] == str(
        tmp_path / "elsewhere" / "data"
    )


def test_resume_refuses_to_change_the_model(tmp_path):
    saved = _saved(tmp_path)
    composed = OmegaConf.create(compose(tiny_overrides(tmp_path, **{"model.emb_size": "48"})))
    with pytest.raises(ConfigError) as err:
        resume_config(saved, composed, ["model.emb_size"])
    message = str(err.value)
    assert "\n" not in message and "model.emb_size=48" in message and "(32)" in message


def test_truncate_jsonl_keeps_complete_records_up_to_the_step(tmp_path):
    log = tmp_path / "progress.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo', encoding="utf-8")
    truncate_jsonl(log, 2)
    assert log.read_text(encoding="utf-8") == '{"step": 1}\n{"step": 2}\n'
