"""Checkpoint averaging (Vaswani et al. 2017 sec. 6.1: average the last checkpoints).

    nmt-average CKPT1 CKPT2 ... -o averaged.pt
    nmt-average RUN_DIR --last 5 -o averaged.pt     # RUN_DIR/checkpoints/step_*.pt

A checkpoint is a dict with "model" (a state_dict) and other plain-data keys. The result is
the first checkpoint's dict with "model" replaced by the element-wise mean of the float
tensors (other tensors, e.g. integer counters, are taken from the last checkpoint).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import torch

from nmt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nmt.cli import run_main
from nmt.errors import UserError

STEP_RE = re.compile(r"^step_(\d+)\.pt$")


class AverageError(UserError, ValueError):
    """Checkpoints cannot be averaged; the message is one line."""


def _load(path: Path) -> dict[str, Any]:
    """An nmt checkpoint with a "model" state_dict (nmt.checkpoint: safe, format-checked)."""
    path = Path(path)
    if not path.is_file():
        raise AverageError(f"checkpoint not found: {path}")
    try:
        ckpt = load_checkpoint(path, require=("model",))
    except CheckpointError as err:
        raise AverageError(str(err)) from None
    if not isinstance(ckpt["model"], dict):
        raise AverageError(f"{path} is not a checkpoint (a dict with a 'model' state_dict)")
    return ckpt


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """Load `paths` and return the first checkpoint with "model" replaced by the mean weights.

    Raises AverageError (one line) for no paths, a missing/unreadable file, or state_dicts
    whose keys or shapes differ.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise AverageError("no checkpoints to average")
    first = _load(paths[0])
    ref: dict[str, torch.Tensor] = first["model"]
    sums: dict[str, torch.Tensor] = {}
    for key, value in ref.items():
        if torch.is_tensor(value) and value.is_floating_point():
            sums[key] = value.detach().to(torch.float64).clone()  # accumulate in float64
    last = ref
    for path in paths[1:]:
        state = _load(path)["model"]
        if state.keys() != ref.keys():
            missing = sorted(set(ref) - set(state))
            extra = sorted(set(state) - set(ref))
            raise AverageError(
                f"{path} has different model keys than {paths[0]} "
                f"(missing: {missing[:3]}, unexpected: {extra[:3]})"
            )
        for key, value in state.items():
            want = ref[key]
            if torch.is_tensor(want) and (not torch.is_tensor(value) or value.shape != want.shape):
                got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                raise AverageError(
                    f"{path}: {key} has shape {got}, expected {tuple(want.shape)} as in {paths[0]}"
                )
            if key in sums:
                sums[key] += value.detach().to(torch.float64)
        last = state
    model: dict[str, Any] = {}
    for key, value in ref.items():
        if key in sums:
            model[key] = (sums[key] / len(paths)).to(value.dtype)
        else:
            model[key] = last[key]
    out = dict(first)
    out["model"] = model
    return out


def last_checkpoints(run_dir: Path, n: int) -> list[Path]:
    """The last `n` numbered checkpoints (by step number) of a run, oldest first.

    Looks in RUN_DIR/checkpoints/step_*.pt, or in RUN_DIR itself if it holds them directly.
    May return fewer than `n` if fewer exist.
    """
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    numbered = []
    for path in folder.glob("step_*.pt"):
        match = STEP_RE.match(path.name)
        if match:
            numbered.append((int(match.group(1)), path))
    numbered.sort()
    return [path for _, path in numbered[-n:]] if n > 0 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nmt-average",
        description="Average model weights of several checkpoints into one checkpoint.",
    )
    parser.add_argument(
        "inputs", nargs="+", type=Path, help="checkpoint files, or one run folder with --last"
    )
    parser.add_argument(
        "--last",
        type=int,
        default=None,
        metavar="N",
        help="average the last N RUN_DIR/checkpoints/step_*.pt (by step number)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="averaged checkpoint")
    args = parser.parse_args(argv)
    return run_main("nmt-average", lambda: _average(args))


def _average(args: argparse.Namespace) -> int:
    if args.last is not None:
        if len(args.inputs) != 1:
            raise AverageError("--last takes exactly one run folder")
        if args.last < 1:
            raise AverageError(f"--last={args.last} must be >= 1")
        run_dir = args.inputs[0]
        if not run_dir.is_dir():
            raise AverageError(f"run folder not found: {run_dir}")
        paths = last_checkpoints(run_dir, args.last)
        if len(paths) < args.last:
            raise AverageError(
                f"--last {args.last}: only {len(paths)} numbered checkpoints (step_*.pt) in {run_dir}"
            )
    else:
        paths = list(args.inputs)
    save_checkpoint(args.output, average_checkpoints(paths))  # atomic, fsynced
    print(f"averaged {len(paths)} checkpoints -> {args.output}: {', '.join(p.name for p in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
