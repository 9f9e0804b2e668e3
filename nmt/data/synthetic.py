"""Synthetic sequence-to-sequence tasks (reverse, copy) for quick sanity checks of models.

Sentences are space-separated symbols `a0 .. a{alphabet-1}`; the target is the reversed
("reverse") or identical ("copy") sequence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nmt.files import atomic_write_text

TASKS = ("reverse", "copy")
SYNTHETIC_PREFIXES = {"train": "train", "valid": "val", "test": "test"}  # split -> file prefix
SPLIT_PREFIXES = tuple(SYNTHETIC_PREFIXES.values())
SYNTHETIC_SEED = 1234  # data.source=synthetic: the same task for every run seed
MANIFEST = "task.json"


def make_task(
    task: str, n: int, alphabet: int, min_len: int, max_len: int, seed: int
) -> tuple[list[str], list[str]]:
    """Generate `n` (source, target) lines of `task` with lengths in [min_len, max_len]."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {', '.join(TASKS)}")
    if alphabet < 1 or min_len < 1 or max_len < min_len:
        raise ValueError(
            f"need alphabet >= 1 and 1 <= min_len <= max_len (got {alphabet}, {min_len}, {max_len})"
        )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    src: list[str] = []
    tgt: list[str] = []
    for length in lengths:
        symbols = [f"a{k}" for k in rng.integers(0, alphabet, size=int(length))]
        src.append(" ".join(symbols))
        tgt.append(" ".join(symbols[::-1] if task == "reverse" else symbols))
    return src, tgt


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write lines atomically, so readers never see a partial file."""
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def write_task(
    root: str | Path,
    task: str,
    size: int,
    alphabet: int,
    min_len: int,
    max_len: int,
    seed: int,
    src_lang: str,
    tgt_lang: str,
) -> bool:
    """Write `{root}/{train,val,test}.{src_lang,tgt_lang}` for a synthetic task.

    Sizes are `size` for train and `max(size // 10, 50)` for val and test, each split with its
    own seed. Existing files are kept when `{root}/task.json` records the same parameters;
    otherwise (absent or different) the task is regenerated. Returns True if files were written.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    params = {
        "task": task,
        "size": size,
        "alphabet": alphabet,
        "min_len": min_len,
        "max_len": max_len,
        "seed": seed,
        "src_lang": src_lang,
        "tgt_lang": tgt_lang,
    }
    files = [root / f"{p}.{lang}" for p in SPLIT_PREFIXES for lang in (src_lang, tgt_lang)]
    manifest = root / MANIFEST
    if manifest.is_file() and all(f.is_file() for f in files):
        try:
            if json.loads(manifest.read_text(encoding="utf-8")) == params:
                return False
        except json.JSONDecodeError:
            pass
    small = max(size // 10, 50)
    for k, (prefix, n) in enumerate(zip(SPLIT_PREFIXES, (size, small, small))):
        src, tgt = make_task(task, n, alphabet, min_len, max_len, seed=seed * 1000 + k)
        _write_lines(root / f"{prefix}.{src_lang}", src)
        _write_lines(root / f"{prefix}.{tgt_lang}", tgt)
    atomic_write_text(manifest, json.dumps(params, sort_keys=True))
    return True
