"""Shared fixtures: tiny synthetic corpora and a small trained run (trained once per session)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
# one thread per test process: `make test` runs one process per core (pytest-xdist), and a fixed
# count keeps every learned threshold on the same kernels whether the tests run in parallel or not
torch.set_num_threads(1)


def _native_bf16() -> bool:
    from nmt.runtime import cpu_native_bf16

    return cpu_native_bf16()


# bf16 numerics tests run where the CPU computes bf16 natively; the fallback for CPUs without it
# (emulated bf16, fp32 LSTM) is tested on every machine in test_runtime.py and test_train.py
requires_native_bf16 = pytest.mark.skipif(
    not _native_bf16(), reason="this CPU has no AVX512-BF16/AMX (native bf16)"
)


def data_root() -> Path | None:
    """The shared corpora folder (NMT_DATA_ROOT), or None."""
    root = os.environ.get("NMT_DATA_ROOT")
    return Path(root) if root and Path(root).is_dir() else None


def tiny_overrides(tmp: Path, task: str = "reverse", **extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run on a synthetic task."""
    base = {
        "data": task,
        "data.root": str(tmp / "data"),
        "data.task_size": "600",
        "data.task_alphabet": "8",
        "data.task_max_len": "7",
        "model.emb_size": "32",
        "model.enc_hidden": "32",
        "model.dec_hidden": "64",
        "model.dropout": "0.0",
        "model.tie_embeddings": "false",
        "trainer.max_tokens": "600",
        "trainer.schedule": "plateau",  # tiny runs test everything but the schedule
        "trainer.lr": "3e-3",
        "trainer.max_steps": "30",
        "trainer.validate_every": "15",
        "trainer.log_every": "1",
        "trainer.num_heatmaps": "2",
        "decode.beam": "2",
    }
    if extra.get("model") == "transformer":
        for key in (
            "model.emb_size",
            "model.enc_hidden",
            "model.dec_hidden",
            "model.tie_embeddings",
        ):
            del base[key]
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def compose(overrides: list[str]):
    """conf/ with `overrides`, as nmt-train composes it (nmt.compose)."""
    from nmt.compose import compose_config

    return compose_config(overrides)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A tiny RNN trained for 30 steps on reversal: a complete run folder."""
    from nmt.pipeline import run

    tmp = tmp_path_factory.mktemp("run")
    run(compose(tiny_overrides(tmp)), tmp / "run")
    return tmp / "run"


# --- real tiny runs shared by the explorer, browser and CTranslate2 tests ---------------------
TF_SIZES = {
    "model": "transformer",
    "model.d_model": "32",
    "model.heads": "2",
    "model.ff_size": "64",
    "model.enc_layers": "2",
    "model.dec_layers": "2",
    "model.dropout": "0.0",
    "model.attention_dropout": "0.0",
}


def train_run(folder: Path, data: Path, **extra: str) -> Path:
    """A real run folder as a sweep leaves it: trained, tested, with .hydra/ for nmt-report."""
    from omegaconf import OmegaConf

    from nmt.pipeline import run

    steps = {"trainer.max_steps": "150", "trainer.validate_every": "50"}
    quiet = {"trainer.num_heatmaps": "0", "trainer.threads": "1"}
    overrides = tiny_overrides(data, **steps, **quiet, **extra)
    cfg = compose(overrides)
    threads = torch.get_num_threads()
    try:
        run(cfg, folder)
    finally:  # trainer.threads=1 sets torch's global thread count: give the session its own back
        torch.set_num_threads(threads)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    shown = [o for o in overrides if o.startswith(("attention=", "model="))]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(shown))
    return folder


@pytest.fixture(scope="session")
def explore_runs(tmp_path_factory) -> Path:
    """A multirun folder with two real runs on the reversal task: Luong general and a
    2-layer, 2-head Transformer, 150 steps each (shared data folder)."""
    tmp = tmp_path_factory.mktemp("explore")
    root = tmp / "multirun"
    train_run(root / "attention=luong_general", tmp, attention="luong_general")
    train_run(root / "model=transformer", tmp, **TF_SIZES)
    return root


def cut_and_resume(cfg, folder: Path, at: int = 10) -> None:
    """Train `cfg` into `folder`, stopped as if Ctrl-C arrived during step `at`, then resumed
    from its last.pt to the end (the reliability tests compare its losses with a whole run)."""
    import signal

    from nmt.trainer import Trainer

    cut = Trainer(cfg, folder)

    def stop_during_step(module, inputs, output):
        if cut.model.training and cut.progress.step == at - 1:
            cut._handle_signal(signal.SIGINT, None)

    cut.model.register_forward_hook(stop_during_step)
    assert cut.fit()["steps"] == at
    Trainer(cfg, folder).fit()  # resumes from folder/checkpoints/last.pt


# --- a deterministic stand-in for eflomal (it has no seed option) ---------------------------
class ReversalAligner:
    """eflomal's interface; links word i to word n-1-i (forward) and the same plus one spurious
    link (reverse), so the symmetrisation matters. Counts its calls."""

    calls = 0

    @classmethod
    def module(cls) -> types.SimpleNamespace:
        """A stand-in for the `eflomal` module."""
        return types.SimpleNamespace(Aligner=cls)

    def __init__(self, model: int = 3, n_samplers: int = 2) -> None:
        pass

    def align(self, src, tgt, links_filename_fwd, links_filename_rev, quiet=True) -> None:
        ReversalAligner.calls += 1
        fwd, rev = [], []
        for s, t in zip(src, tgt):
            n, m = len(s.split()), len(t.split())
            links = [f"{i}-{m - 1 - i}" for i in range(min(n, m))]
            fwd.append(" ".join(links))
            rev.append(" ".join([*links, f"{n - 1}-{m - 1}"] if min(n, m) > 1 else links))
        Path(links_filename_fwd).write_text("".join(x + "\n" for x in fwd))
        Path(links_filename_rev).write_text("".join(x + "\n" for x in rev))


@pytest.fixture
def stand_in_eflomal(monkeypatch):
    ReversalAligner.calls = 0
    monkeypatch.setitem(sys.modules, "eflomal", ReversalAligner.module())
    return ReversalAligner


# --- models shared by the search tests (test_decoding, test_shortlist) -----------------------
@pytest.fixture(scope="session")
def reversal_models():
    """An RNN trained 60 steps on reversal (it stops on its own) and an untrained Transformer."""
    from test_rnn import train_task
    from test_transformer import make_model

    return {"rnn": train_task("luong_general", "reverse", steps=60), "transformer": make_model()}


def reversal_batch():
    """24 reversal sources and their lengths, the same every call."""
    from test_rnn import make_batch

    src, lens, _, _, _ = make_batch(24, "reverse", torch.Generator().manual_seed(11))
    return src, lens


@pytest.fixture(autouse=True)
def _no_run_log_left_open():
    """A trainer a test leaves open (no Trainer.close) must not log into later tests' stderr:
    its handlers go at the end of each test, as they would with the process of a real run."""
    yield
    from nmt.runtime import teardown_logging

    teardown_logging()
