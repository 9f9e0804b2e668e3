"""DistributedDataParallel set-up for `torchrun` (WORLD_SIZE, RANK, LOCAL_RANK in the environment).

gloo on CPU, NCCL on GPU (one GPU per process). Rank 0 prepares the data while the others wait,
so the process group allows hours (`NMT_DIST_TIMEOUT` seconds, default 4 h).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) when not launched by torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def process_group(device_name: str, run_dir: Path) -> Iterator[Path]:
    """Join the process group for the whole `with` block (a no-op for one process); yields the
    run folder every rank uses: rank 0's (Hydra names it by each process's start time)."""
    rank, world_size = world()
    if world_size == 1:
        yield run_dir
        return
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() and device_name != "cpu" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = datetime.timedelta(seconds=float(os.environ.get("NMT_DIST_TIMEOUT", 4 * 3600)))
    dist.init_process_group(backend, timeout=timeout)
    try:
        shared = [str(run_dir)]
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
        dist.broadcast_object_list(shared, src=0, device=device)
        yield Path(shared[0])
    finally:
        dist.destroy_process_group()


def from_rank0(obj: Any, device: torch.device) -> Any:
    """Rank 0's `obj` on every rank (a collective: every rank must call it)."""
    shared = [obj]
    torch.distributed.broadcast_object_list(shared, src=0, device=device)
    return shared[0]


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (one device per process on GPU)."""
    ids = [device.index] if device.type == "cuda" else None
    # the only buffers are constant (the sinusoid table): no broadcast in every forward, which
    # would also be a collective inside rank 0's validation
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
