"""A training run's checkpoints: what they hold, where they live and how they rotate.

`checkpoints/last.pt` is written atomically at every validation; `step_N.pt` (the last
`trainer.keep_last`) and `best.pt` (best dev BLEU) are hard links to it (copies where the file
system has no links). A run resumes from `last.pt` of its own folder, or from `resume=`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from nmt.checkpoint import load_checkpoint, save_checkpoint


@dataclasses.dataclass
class Progress:
    """Counters saved in every checkpoint so that a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_bleu: float = -1.0
    best_step: int = 0
    bad_validations: int = 0
    train_time: float = 0.0  # seconds spent in training steps (for max_time and tokens/s)
    src_tokens: int = 0
    tgt_tokens: int = 0
    nonfinite_in_a_row: int = 0


def find_resume(ckpt_dir: Path, resume: str | None) -> dict | None:
    """The checkpoint to continue from: `resume` (a run folder or a .pt), else this run's own
    last.pt, else None (a fresh run)."""
    if resume:
        path = Path(resume)
        return load_checkpoint(path / "checkpoints" / "last.pt" if path.is_dir() else path)
    last = ckpt_dir / "last.pt"
    return load_checkpoint(last) if last.is_file() else None


def save_snapshot(
    ckpt_dir: Path, payload: dict[str, Any], step: int, keep_last: int, is_best: bool
) -> Path:
    """Write last.pt atomically; link step_N.pt (keep the last `keep_last`) and best.pt to it."""
    last = ckpt_dir / "last.pt"
    save_checkpoint(last, payload)
    links = [ckpt_dir / f"step_{step}.pt"] if keep_last else []
    if is_best:
        links.append(ckpt_dir / "best.pt")
    for target in links:
        _link(last, target)
    for old in numbered(ckpt_dir)[: max(0, len(numbered(ckpt_dir)) - keep_last)]:
        old.unlink()
    return last


def numbered(ckpt_dir: Path) -> list[Path]:
    """step_N.pt files by N."""
    return sorted(ckpt_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def _link(source: Path, target: Path) -> None:
    """`target` becomes a hard link to (or a copy of) `source`, replaced atomically."""
    tmp = target.with_suffix(".pt.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
