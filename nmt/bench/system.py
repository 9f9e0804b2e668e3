"""What the benchmark records about the machine: CPU, memory, git state and the matmul peak.

torch is imported inside the functions: the benchmark sets OMP_NUM_THREADS before torch loads.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout: conf/, scripts/, .git


def rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_device(device: str) -> str:
    """`cuda` where --device asks for it (cuda, auto) and a GPU is there, else `cpu`."""
    import torch

    return "cuda" if device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"


def auto_precision(device: str) -> str:
    """The precision `auto` means here: the one rule of `nmt.runtime.resolve_precision`."""
    import torch

    from nmt.runtime import resolve_precision

    return resolve_precision("auto", torch.device(bench_device(device)), "--precision").name


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def sync(device) -> None:
    """Wait for the GPU, so that a timer read afterwards covers the queued work."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype_name: str, n: int, device: str, seconds: float = 1.0) -> float:
    """Best sustained FLOP/s of torch.mm on n x n matrices (2 n^3 FLOPs each)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        torch.mm(a, b)
    sync(device)
    best = 0.0
    for _ in range(3):
        count, tick = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            count += 1
            sync(device)
            elapsed = time.perf_counter() - tick
            if elapsed >= seconds / 3:
                break
        best = max(best, 2.0 * n**3 * count / elapsed)
    return best


def meta(args: argparse.Namespace) -> dict[str, Any]:
    """bench.json's "meta": software, machine, checkout and the run's settings."""
    import torch

    from nmt.runtime import cpu_capability, cpu_flags

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "precision": args.precision,
        "device": args.device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": list(cpu_flags()),
        "cpu_capability": cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host": platform.node(),
        "git": git_state(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "steps": args.steps,
        "warmup": args.warmup,
        "decode_sents": args.decode_sents,
        "decode_min_len": args.min_len,  # output tokens, EOS not counted
        "decode_max_len": args.max_len,
        "overrides": args.set,
        "tokens": "non-padding tokens, EOS included (source + EOS; target + EOS)",
    }
