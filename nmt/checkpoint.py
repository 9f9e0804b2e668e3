"""Atomic, safe checkpoints: plain data only, written to a temp file then renamed, loaded
with `weights_only=True` so a crafted pickle is refused instead of executed.

A checkpoint is a dict {"format": "nmt-checkpoint", "version": 1, "config": {...},
"tokenizer": {...}, "model": state_dict, ...} of tensors, strings, bytes, numbers, lists and
dicts only. `save_checkpoint` writes `.NAME.PID.XXXX.tmp` beside the target, flushes and
fsyncs it, then renames it over the target, so a kill at any moment leaves either the old or
the new file, never a partial one; temp files left by a killed process are removed by the
next save.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from nmt.errors import UserError
from nmt.files import atomic_write, remove_stale_temps  # noqa: F401  (re-exported)

FORMAT = "nmt-checkpoint"
VERSION = 1
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_TORCH_NOISE = ("Weights only load failed", "Please file an issue", "Check the documentation")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, truncated, unsafe or from an incompatible version (one line)."""


# --- saving ----------------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically: a crash or kill mid-save never leaves `path` corrupt."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write(path, lambda f: torch.save(payload, f))


# --- loading ---------------------------------------------------------------------------------
def _detail(err: BaseException) -> str:
    """The informative part of a torch.load error, on one short line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(_TORCH_NOISE)] or [type(err).__name__]
    text = lines[0].replace("WeightsUnpickler error:", "").strip() or type(err).__name__
    if not isinstance(err, RuntimeError | pickle.UnpicklingError) and text != type(err).__name__:
        text = f"{type(err).__name__}: {text}"  # e.g. "KeyError: 101" rather than "101"
    return text.split(". This is an internal")[0][:160]


def _explain(path: Path, err: BaseException) -> CheckpointError:
    """A one-line CheckpointError for an exception raised by torch.load."""
    found = _GLOBAL_RE.search(str(err))
    if found:
        return CheckpointError(
            f"{path}: refused to load: the file references the Python object {found.group(1)}, "
            "which could run arbitrary code; nmt checkpoints hold only tensors and plain data"
        )
    if "Weights only load failed" in str(err):
        return CheckpointError(
            f"{path}: refused to load: not a plain-data PyTorch checkpoint ({_detail(err)})"
        )
    return CheckpointError(f"{path}: not a checkpoint, or a truncated one ({_detail(err)})")


def run_folder(path: str | Path) -> Path:
    """The run folder a checkpoint belongs to (RUN/checkpoints/X.pt -> RUN; a folder is itself)."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def resolve_checkpoint(path: str | Path) -> Path:
    """`path` itself, or for a run folder its checkpoints/best.pt (or best.pt inside it)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.pt", path / "best.pt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{path}: a folder without checkpoints/best.pt")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    require: Iterable[str] = (),
    mmap: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint safely, raising CheckpointError with one line on any problem.

    `path` may be a run folder (its checkpoints/best.pt is used). `require` names keys that
    must be present (e.g. "model", "optimizer" for resuming). `mmap=True` maps the tensors
    instead of reading them (for a caller that wants the progress or config only).
    """
    path = resolve_checkpoint(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" on foreign files
            ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # any failure to parse is the file's fault: one line, no traceback
        raise _explain(path, err) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint (no '{FORMAT}' marker)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('version')!r} is not supported "
            f"(this nmt reads version {VERSION}); use the nmt release that wrote it"
        )
    missing = [key for key in require if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    return ckpt
