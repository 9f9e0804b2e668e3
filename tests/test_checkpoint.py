"""Checkpoints: atomic under SIGKILL, keep_last, safe loading (weights_only) and one-line errors."""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose, tiny_overrides

from nmt.checkpoint import FORMAT, VERSION, CheckpointError, load_checkpoint, save_checkpoint

BLOB = 2_000_000  # floats: an 8 MB checkpoint takes a while to write
SAVER = f"""
import itertools, sys, torch
from nmt.checkpoint import save_checkpoint
blob = torch.arange({BLOB}, dtype=torch.float32)
for step in itertools.count():
    save_checkpoint(sys.argv[1], {{"step": step, "blob": blob + step}})
"""


def _temps(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.*.tmp"))


def _kill_mid_save(proc: subprocess.Popen, path: Path, delay: float) -> None:
    """SIGKILL `proc` once it has saved at least once and is writing the next temp file."""
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    deadline = time.monotonic() + 10  # a writer without temp files never gets past this
    while not _temps(path) and time.monotonic() < deadline:
        pass
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_sigkill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    rng = random.Random(13)  # seeded: the second kill's delay is the same on every run
    paths = [tmp_path / f"saver{i}" / "last.pt" for i in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(p)], cwd=ROOT, stderr=subprocess.PIPE)
        for p in paths
    ]
    try:
        for i, (proc, path) in enumerate(zip(procs, paths)):
            _kill_mid_save(proc, path, 0.0 if i == 0 else rng.uniform(0.0, 0.03))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    left_mid_write = 0
    for proc, path in zip(procs, paths):
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        left_mid_write += bool(_temps(path))
        ckpt = load_checkpoint(path)  # never torn: the old or the new file, complete
        step = ckpt["step"]
        assert ckpt["blob"].shape == (BLOB,)
        assert ckpt["blob"][0].item() == step and ckpt["blob"][-1].item() == BLOB - 1 + step
    assert left_mid_write >= 1, "no process was killed while writing: the test proved nothing"
    save_checkpoint(paths[0], {"step": -1})  # the next save removes temp files of dead writers
    assert not _temps(paths[0])
    assert load_checkpoint(paths[0])["step"] == -1


def test_roundtrip_adds_format_and_version(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(2)}, "text": "ü", "raw": b"\x00"})
    ckpt = load_checkpoint(tmp_path / "c.pt", require=("model",))
    assert (ckpt["format"], ckpt["version"]) == (FORMAT, VERSION)
    assert (
        ckpt["text"] == "ü"
        and ckpt["raw"] == b"\x00"
        and torch.equal(ckpt["model"]["w"], torch.ones(2))
    )
    with pytest.raises(CheckpointError, match="missing optimizer"):
        load_checkpoint(tmp_path / "c.pt", require=("model", "optimizer"))


def test_keep_last_and_best(tmp_path):
    from nmt.trainer import Trainer

    cfg = compose(tiny_overrides(tmp_path, **{"trainer.keep_last": "2"}))
    from nmt.config import to_dataclass

    trainer = Trainer(to_dataclass(cfg), tmp_path / "run")
    for step in range(1, 7):
        trainer.progress.step = step
        trainer.save(is_best=step == 2)
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step_*.pt")) == ["step_5.pt", "step_6.pt"]
    assert load_checkpoint(ckpts / "best.pt")["progress"]["step"] == 2
    assert load_checkpoint(ckpts / "last.pt")["progress"]["step"] == 6
    assert load_checkpoint(ckpts / "step_5.pt")["progress"]["step"] == 5
    assert not list(ckpts.glob("*.tmp")) and not list(ckpts.glob(".*.tmp"))


# --- safe loading ------------------------------------------------------------------------
class _Evil:
    """Unpickling this runs a shell command (the classic malicious-checkpoint payload)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_crafted_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "model": {}, "x": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil)
    message = str(err.value)
    assert "\n" not in message and "refused" in message and "system" in message
    assert not marker.exists()
    from nmt.translate import Translator

    with pytest.raises(CheckpointError):
        Translator(evil)
    assert not marker.exists()
    # the file really is dangerous: an unsafe load runs the payload
    torch.load(evil, weights_only=False)
    assert marker.exists()


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(64, 64)}})
    return path


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, text the error must contain)."""
    good = _good(tmp_path).read_bytes()
    files = {
        "truncated": (good[: len(good) // 2], "truncated"),
        "ten_bytes": (good[:10], "truncated"),
        "empty": (b"", "truncated"),
        "random": (random.Random(0).randbytes(4096), "not a"),
        "text": (b"hello world\n", "not a"),
    }
    out = {}
    for name, (data, expect) in files.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
        out[name] = (tmp_path / f"{name}.pt", expect)
    newer = torch.load(tmp_path / "good.pt", weights_only=True)
    newer["version"] = VERSION + 1
    torch.save(newer, tmp_path / "newer.pt")
    out["newer_version"] = (tmp_path / "newer.pt", f"version {VERSION + 1} is not supported")
    torch.save({"w": torch.ones(1)}, tmp_path / "state_dict.pt")
    out["plain_state_dict"] = (tmp_path / "state_dict.pt", "not an nmt checkpoint")
    out["missing"] = (tmp_path / "nope.pt", "no such checkpoint file")
    (tmp_path / "emptydir").mkdir()
    out["folder_without_checkpoints"] = (tmp_path / "emptydir", "without checkpoints/best.pt")
    return out


def test_bad_checkpoint_files_give_one_line_errors(tmp_path):
    for name, (path, expect) in _bad_files(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert "\n" not in message, name
        assert str(path) in message and expect in message, (name, message)
        assert len(message) < 400, (name, message)
