"""Where and how a run computes: device, precision, seeding, random state.

One helper decides precision for every tool (`nmt-train`, `nmt-translate`, `nmt-evaluate`,
`make bench`): `resolve_precision`. `auto` means bf16 autocast where the hardware computes bf16
natively (a CPU with AVX512-BF16 or AMX; a CUDA device that supports bf16), fp32 elsewhere.
On a CPU without native bf16, an explicit `bf16` still works: PyTorch emulates the bf16 matmuls
(slower than fp32), and the one op oneDNN has no kernel for there (a fused, unpacked `nn.LSTM`)
runs in float32 outside autocast (`fused_rnn`). Set `NMT_CPU_NO_BF16=1` to treat the CPU as
having no native bf16 (tests use it to exercise the fallback on any machine).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from nmt.config import ConfigError

log = logging.getLogger("nmt")

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


class DeviceError(ConfigError):
    """The requested device cannot be used; the message names the key and what to set."""


# --- the CPU ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_flags() -> tuple[str, ...]:
    """The CPU's vector-extension flags that matter for speed (avx2, fma, avx512*, avx_vnni, amx*)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return tuple(
                    sorted(
                        f
                        for f in flags
                        if f.startswith(("avx512", "amx", "avx2", "avx_vnni", "fma"))
                    )
                )
    except OSError:
        pass
    return ()


def cpu_capability() -> str:
    """PyTorch's own name for the CPU's kernels: 'AVX512', 'AVX2', 'DEFAULT', ..."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return "unknown"


def cpu_native_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AVX512-BF16 or AMX)."""
    if os.environ.get("NMT_CPU_NO_BF16", "") not in ("", "0"):
        return False
    return bool(set(BF16_CPU_FLAGS) & set(cpu_flags()))


def cpu_vnni() -> bool:
    """True when the CPU has VNNI (AVX512-VNNI or AVX-VNNI): 8-bit products summed exactly in
    32 bits. Without it, x86 int8 matmul kernels add pairs of u8 x s8 products in saturating
    16-bit integers (vpmaddubsw) unless the library works around it."""
    return bool({"avx512_vnni", "avx_vnni"} & set(cpu_flags()))


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes bf16 natively, and why (for a log line)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(device)} supports bf16"
        return False, f"{torch.cuda.get_device_name(device)} has no bf16 support"
    if cpu_native_bf16():
        return True, "this CPU has " + "/".join(f for f in BF16_CPU_FLAGS if f in cpu_flags())
    return False, f"this CPU ({cpu_capability()}) has no AVX512-BF16/AMX"


# --- precision ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Precision:
    """The precision a run computes in (`fp32` or `bf16`), what was asked for and why."""

    name: str
    requested: str
    reason: str
    native: bool  # bf16 is native on this device (also recorded when fp32 is chosen)

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.name == "bf16" else torch.float32

    def record(self) -> dict[str, Any]:
        """What metrics.json and bench.json record about it."""
        return {
            "precision": self.name,
            "precision_requested": self.requested,
            "cpu_capability": cpu_capability(),
            "bf16_native": self.native,
        }


def resolve_precision(requested: str, device: torch.device, key: str = "precision") -> Precision:
    """Decide fp32 or bf16 for `device` and log the choice in one line.

    `auto`: bf16 where it is native, else fp32. `bf16` where it is not native: bf16 anyway,
    emulated, with one warning that it will be slower than fp32. `key` names the setting in
    messages (`trainer.precision`, `--precision`).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"{key}={requested}: expected one of {', '.join(PRECISIONS)}")
    native, why = native_bf16(device)
    if requested == "auto":
        name = "bf16" if native else "fp32"
        log.info("precision auto -> %s: %s", name, why)
    else:
        name = requested
        if name == "bf16" and not native:
            log.warning(
                "%s=bf16: %s, so bf16 is emulated and slower than fp32 here (matmuls up to "
                "~100x: 1.1 vs 120 GFLOP/s on an AVX2 EPYC); %s=auto picks fp32",
                key,
                why,
                key,
            )
    return Precision(name, requested, why, native)


def autocast(device: torch.device, precision: Precision | str):
    """bf16 autocast on `device` for bf16; a no-op for fp32."""
    name = precision.name if isinstance(precision, Precision) else precision
    if name == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rnn_in_float32(device_type: str) -> bool:
    """Whether `nn.LSTM`/`nn.GRU` must run outside bf16 autocast, in float32, on this device.

    A CPU without AVX512-BF16/AMX: under bf16 autocast oneDNN fails ("could not create a
    primitive descriptor for the LSTM forward propagation primitive"). CUDA: autocast's cuDNN
    RNN wrapper casts input, weights and states to float16 whatever dtype autocast was given,
    so a bf16 run would train its recurrent layers in fp16 without loss scaling.
    """
    return device_type != "cpu" or not cpu_native_bf16()


def fused_rnn(rnn: torch.nn.RNNBase, x: Any, hidden: Any = None):
    """`rnn(x, hidden)`; in float32 outside autocast where `rnn_in_float32` says so.
    `x` may be packed."""
    dev = (x.data if isinstance(x, PackedSequence) else x).device.type
    if not torch.is_autocast_enabled(dev) or not rnn_in_float32(dev):
        return rnn(x, hidden)
    if isinstance(hidden, tuple):
        hidden = tuple(h.float() for h in hidden)
    elif hidden is not None:
        hidden = hidden.float()
    with torch.autocast(dev, enabled=False):
        return rnn(x.float(), hidden)


# --- logging ----------------------------------------------------------------------------------
class StderrHandler(logging.StreamHandler):
    """A StreamHandler writing to whatever `sys.stderr` is when a record is emitted, not the
    stream of the moment it was made (pytest's capture and notebooks swap sys.stderr; a handler
    holding a swapped-out, closed stream turns every later log line into a logging error)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def setup_logging(run_dir: Path, main_process: bool = True) -> None:
    """Log to `run_dir/train.log` and stderr (rank 0 only)."""
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    if not main_process:
        log.addHandler(logging.NullHandler())
        return
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(fmt)
    sh = StderrHandler()
    sh.setFormatter(fmt)
    log.addHandler(fh)
    log.addHandler(sh)


def teardown_logging() -> None:
    """Detach and close what `setup_logging` attached (the run's train.log stays complete; later
    lines of the same process, a translation after training, do not go into it)."""
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


# --- device -------------------------------------------------------------------------------------
def pick_device(name: str, key: str = "trainer.device") -> torch.device:
    """`auto` (CUDA when available, else CPU), `cpu` or `cuda`; on the CPU, with
    `keep_freed_memory` and `bound_onednn_caches` applied."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{key}=cuda but no CUDA device is available; use {key}=cpu")
    if name == "cpu":
        keep_freed_memory()
        bound_onednn_caches()
    return torch.device(name)


ONEDNN_CACHE_CAPACITY = 64  # primitives; oneDNN's and PyTorch's (ideep's) default is 1,024
ONEDNN_CACHE_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")  # their sizes


def bound_onednn_caches(capacity: int = ONEDNN_CACHE_CAPACITY) -> dict[str, str]:
    """Cap oneDNN's primitive cache and PyTorch's own (ideep) cache at `capacity` entries each,
    unless the user set them (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`, `LRU_CACHE_CAPACITY`).

    bf16 matmuls on a CPU run through oneDNN, which compiles and caches one primitive per matmul
    shape; token batches bring new shapes at nearly every step (M = B x T, beam sizes), so both
    caches fill to their 1,024 entries: whole 17-minute bf16 runs of the reference workload
    reached 2.9 GB (RNN) and 5.1 GB (Transformer), against 1.0-1.6 GB in fp32, where matmuls go
    to MKL. Capped at 64, 161 bf16 steps peaked at 837 MiB instead of 1,944 (RNN) and 1,381
    instead of 3,108 (Transformer) at the same speed (2-core AVX-512 EPYC); each cap alone
    removed a part. Both variables are read when the first primitive is made, so this must run
    before any model work (`pick_device` calls it); later calls change nothing. Returns what
    was set."""
    set_now = {}
    for var in ONEDNN_CACHE_VARS:
        if var not in os.environ:
            os.environ[var] = set_now[var] = str(capacity)
    return set_now


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed tensors of up to 32 MiB for reuse instead of unmapping them.

    PyTorch's CPU allocator is plain malloc. glibc serves large blocks with a fresh mmap and
    unmaps them on free, so every training step touches its activations' pages anew: tens of
    thousands of page faults per step, costly in a virtual machine. With the mmap threshold at
    its maximum (32 MiB) and no trimming, those blocks come from the heap and stay mapped
    (measured: 3.6x fewer page faults and 6-8% more tokens/s for the reference Transformer in
    fp32, same peak RSS). Returns whether it applied (glibc only; a no-op elsewhere).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        return bool(ok and libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False


# --- seeding and random state -------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every generator's state, as plain data a weights_only checkpoint can hold."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuple(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
