"""Precision follows the hardware: `auto` picks bf16 only where it is native, an explicit bf16
works everywhere (emulated, with one warning), and no test depends on the CPU it runs on: the
capability check is faked in both directions."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, compose, requires_native_bf16, tiny_overrides
from torch import nn

from nmt import runtime
from nmt.runtime import autocast, fused_rnn, resolve_precision, rnn_in_float32

CPU = torch.device("cpu")


@pytest.fixture
def no_bf16(monkeypatch):
    """Treat this CPU as one without native bf16, whatever it has."""
    monkeypatch.setenv("NMT_CPU_NO_BF16", "1")


@pytest.fixture
def with_bf16(monkeypatch):
    """Pretend the CPU has AVX512-BF16 (only the decision is tested, nothing computes)."""
    monkeypatch.delenv("NMT_CPU_NO_BF16", raising=False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: ("avx2", "avx512_bf16", "avx512f"))


def test_auto_is_fp32_without_native_bf16_and_says_why(no_bf16, caplog):
    with caplog.at_level(logging.INFO, logger="nmt"):
        p = resolve_precision("auto", CPU, "trainer.precision")
    assert (p.name, p.requested, p.native, p.dtype) == ("fp32", "auto", False, torch.float32)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"precision auto -> fp32: this CPU ({runtime.cpu_capability()}) has no AVX512-BF16/AMX"
    ]
    assert p.record() == {
        "precision": "fp32",
        "precision_requested": "auto",
        "cpu_capability": runtime.cpu_capability(),
        "bf16_native": False,
    }


def test_auto_is_bf16_with_native_bf16(with_bf16, caplog):
    with caplog.at_level(logging.INFO, logger="nmt"):
        p = resolve_precision("auto", CPU)
    assert (p.name, p.native, p.dtype) == ("bf16", True, torch.bfloat16)
    assert [r.getMessage() for r in caplog.records] == [
        "precision auto -> bf16: this CPU has avx512_bf16"
    ]


def test_explicit_choices_are_kept_and_bf16_without_native_warns_once(no_bf16, caplog):
    with caplog.at_level(logging.INFO, logger="nmt"):
        assert resolve_precision("fp32", CPU).name == "fp32"
        assert caplog.records == []
        p = resolve_precision("bf16", CPU, "trainer.precision")
    assert p.name == "bf16" and not p.native
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert (
        "trainer.precision=bf16" in record.getMessage()
        and "slower than fp32" in record.getMessage()
    )
    assert "\n" not in record.getMessage()
    with pytest.raises(ValueError, match="--precision=fp16"):
        resolve_precision("fp16", CPU, "--precision")


def test_fused_lstm_under_bf16_autocast_runs_in_fp32_without_native_bf16(no_bf16):
    """The op that crashed on AVX2-only CPUs (oneDNN has no bf16 LSTM primitive there)."""
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
    x = torch.randn(3, 5, 8)
    h = (torch.randn(2, 3, 16).bfloat16(), torch.randn(2, 3, 16).bfloat16())
    with autocast(CPU, "bf16"):
        out, (hn, cn) = fused_rnn(lstm, x.bfloat16(), h)
    ref, _ = lstm(x.bfloat16().float(), tuple(t.float() for t in h))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    out_plain, _ = fused_rnn(lstm, x, None)  # no autocast: exactly the module's own call
    torch.testing.assert_close(out_plain, lstm(x)[0], rtol=0, atol=0)


def test_recurrent_layers_leave_bf16_autocast_on_cuda_and_on_cpus_without_bf16(
    no_bf16, monkeypatch
):
    """CUDA's autocast would run cuDNN LSTMs in fp16 (no loss scaling) under bf16 autocast; a
    CPU without native bf16 has no oneDNN kernel; a CPU with it keeps the bf16 LSTM."""
    assert rnn_in_float32("cuda") and rnn_in_float32("cpu")
    monkeypatch.delenv("NMT_CPU_NO_BF16")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: ("avx2", "avx512_bf16", "avx512f"))
    assert rnn_in_float32("cuda") and not rnn_in_float32("cpu")


def _train_luong_no_feed(tmp_path, precision: str) -> dict:
    from nmt.pipeline import run

    extra = {
        "attention": "luong_general",
        "model.input_feed": "false",
        "trainer.precision": precision,
        "trainer.max_steps": "20",
    }
    metrics = run(compose(tiny_overrides(tmp_path, **extra)), tmp_path / "run")
    assert metrics["steps"] == 20 and math.isfinite(metrics["test_bleu"])
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "progress.jsonl").open()]
    assert sum(losses[-5:]) < sum(losses[:5])
    return metrics


def test_explicit_bf16_trains_without_native_bf16(tmp_path, no_bf16):
    """Luong attention without input feeding (the fused decoder LSTM) trains in bf16 anyway."""
    m = _train_luong_no_feed(tmp_path, "bf16")
    assert (m["precision"], m["precision_requested"], m["bf16_native"]) == ("bf16", "bf16", False)
    assert "bf16 is emulated and slower than fp32" in (tmp_path / "run" / "train.log").read_text()


@requires_native_bf16
def test_bf16_trains_with_native_kernels(tmp_path):
    m = _train_luong_no_feed(tmp_path, "auto")
    assert (m["precision"], m["bf16_native"]) == ("bf16", True)


def _nmt_train(tmp_path, *args: str) -> subprocess.CompletedProcess:
    overrides = tiny_overrides(
        tmp_path, **{"trainer.max_steps": "5", "trainer.test_at_end": "false"}
    )
    return subprocess.run(
        [sys.executable, "-m", "nmt.train", *overrides, *args, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NMT_CPU_NO_BF16": "1"},
        timeout=600,
    )


@pytest.mark.slow
def test_cli_bf16_on_a_cpu_without_it_finishes_with_one_warning(tmp_path):
    """The issue's acceptance command, on a CPU faked to lack AVX512-BF16."""
    proc = _nmt_train(
        tmp_path, "attention=luong_general", "model.input_feed=false", "trainer.precision=bf16"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "trainer.precision=bf16" in warnings[0], warnings
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_default_precision_picks_fp32_and_says_so(tmp_path):
    proc = _nmt_train(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "precision auto -> fp32: this CPU" in proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["precision"] == "fp32" and metrics["precision_requested"] == "auto"
    assert metrics["cpu_capability"] == runtime.cpu_capability()


def test_log_lines_go_to_the_stderr_of_the_moment(tmp_path, monkeypatch):
    """The trainer's stderr handler writes to whatever sys.stderr is when a line is logged, so
    a stream swapped out and closed since (pytest's capture, a notebook) breaks nothing."""
    import io

    from nmt.runtime import setup_logging, teardown_logging

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging(tmp_path)
    logging.getLogger("nmt").info("one")
    first.close()
    monkeypatch.setattr("sys.stderr", second)
    logging.getLogger("nmt").info("two")
    assert second.getvalue().rstrip().endswith("INFO two")
    assert (tmp_path / "train.log").read_text().count("INFO") == 2
    teardown_logging()  # what Trainer.close does: later lines reach neither
    logging.getLogger("nmt").info("three")
    assert "three" not in second.getvalue() + (tmp_path / "train.log").read_text()


STEP_FAULTS = """
import resource, torch
from nmt.runtime import pick_device
assert pick_device("cpu").type == "cpu"  # the CPU device applies the setting by itself
def step():  # a training step's pattern: four 16 MiB activations alive together, then freed
    return [torch.ones(4 * 1024 * 1024) for _ in range(4)]
for _ in range(3):
    step()
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_cpu_device_keeps_freed_memory_mapped():
    """On glibc, pick_device("cpu") sets malloc to keep freed memory mapped: four 16 MiB
    tensors alive together and freed, step after step, come back from pages already mapped
    (glibc's default usually trims the freed 64 MiB and every step faults each 4 KiB page in
    again, 16,384 faults; whether it does depends on the heap's address-space layout, so the
    default is not asserted).

    Measured in a fresh interpreter: what earlier tests did to this process's heap must not
    decide the result (it did once in CI)."""
    tuned = ("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")  # glibc's own malloc, untuned
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuned)}
    out = subprocess.run(
        [sys.executable, "-c", STEP_FAULTS],
        env={**env, "OMP_NUM_THREADS": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    kept = int(out.stdout.split()[-1])
    assert kept < 2000, f"{kept} page faults per step with the setting (16,384 if unmapped)"


CACHE_VARS = runtime.ONEDNN_CACHE_VARS


def test_cpu_device_bounds_onednn_caches_unless_the_user_sized_them(monkeypatch):
    """pick_device("cpu") caps oneDNN's and PyTorch's primitive caches (both read when the first
    primitive is made); a size the user set is kept, and only what was missing is set."""
    for var in CACHE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert runtime.pick_device("cpu").type == "cpu"
    assert all(os.environ[v] == str(runtime.ONEDNN_CACHE_CAPACITY) for v in CACHE_VARS)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    monkeypatch.delenv("LRU_CACHE_CAPACITY")
    assert runtime.bound_onednn_caches() == {"LRU_CACHE_CAPACITY": "64"}
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"


SHAPES_RSS = """
import sys, torch
from nmt.runtime import pick_device
pick_device("cpu")  # caps the caches unless the environment sized them
torch.set_num_threads(1)
w = torch.randn(256, 256, dtype=torch.bfloat16)
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
for m in range(1, 4):  # warm-up: libraries loaded, a first few primitives
    torch.nn.functional.linear(torch.randn(m, 256, dtype=torch.bfloat16), w)
start = rss()
for m in range(8, 8 + 400):  # a new matmul shape per call, as token batches bring them
    torch.nn.functional.linear(torch.randn(m, 256, dtype=torch.bfloat16), w)
print(rss() - start)
"""


@requires_native_bf16
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_bounded_caches_keep_bf16_memory_flat_over_many_shapes():
    """400 bf16 matmuls of 400 shapes in a fresh process: with the caches at oneDNN's default
    size every shape's primitive stays in memory; with pick_device's caps they do not (the
    whole-run growth of bf16 training, in small)."""

    def growth(env: dict) -> int:
        base = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
        out = subprocess.run(
            [sys.executable, "-c", SHAPES_RSS],
            env={**base, **env, "OMP_NUM_THREADS": "1"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    default = growth({v: "1024" for v in CACHE_VARS})
    capped = growth({})
    assert capped < default / 2, f"RSS grew {capped} MiB capped, {default} MiB at 1,024"
