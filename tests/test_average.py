"""Checkpoint averaging: the mean of the weights, the CLI and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmt.average import AverageError, average_checkpoints, last_checkpoints, main
from nmt.checkpoint import load_checkpoint, save_checkpoint


def save_ckpt(path: Path, value: float, step: int, extra_key: bool = False) -> dict:
    model = {
        "w": torch.full((2, 3), value),
        "b": torch.full((3,), 2 * value, dtype=torch.float64),
        "h": torch.full((2,), value, dtype=torch.bfloat16),
        "count": torch.tensor(step),  # integer: copied from the last checkpoint
    }
    if extra_key:
        model["extra"] = torch.zeros(1)
    ckpt = {"model": model, "step": step, "config": {"d_model": 32}, "vocab": ["a", "b"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ckpt)
    return ckpt


def test_average_two(tmp_path):
    a = save_ckpt(tmp_path / "a.pt", 1.0, 10)
    save_ckpt(tmp_path / "b.pt", 4.0, 20)
    out = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    assert torch.allclose(out["model"]["w"], torch.full((2, 3), 2.5))
    assert out["model"]["w"].dtype == torch.float32
    assert out["model"]["b"].dtype == torch.float64
    assert torch.allclose(out["model"]["b"], torch.full((3,), 5.0, dtype=torch.float64))
    assert out["model"]["h"].dtype == torch.bfloat16
    assert torch.allclose(out["model"]["h"].float(), torch.full((2,), 2.5))
    assert out["model"]["count"].item() == 20
    assert out["step"] == 10 and out["config"] == a["config"] and out["vocab"] == a["vocab"]


def test_average_real_model(tmp_path):
    from nmt.config import TransformerConfig
    from nmt.models.transformer import Transformer

    cfg = TransformerConfig(d_model=16, heads=2, ff_size=32, enc_layers=1, dec_layers=1)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(Transformer(cfg, 10, 10))
        save_checkpoint(tmp_path / f"{seed}.pt", {"model": models[-1].state_dict()})
    out = average_checkpoints([tmp_path / f"{s}.pt" for s in range(3)])
    merged = Transformer(cfg, 10, 10)
    merged.load_state_dict(out["model"])
    w = torch.stack([m.decoder[0].ff.fc1.weight for m in models]).mean(0)
    assert torch.allclose(merged.decoder[0].ff.fc1.weight, w, atol=1e-6)


def test_errors(tmp_path):
    save_ckpt(tmp_path / "a.pt", 1.0, 10)
    save_ckpt(tmp_path / "b.pt", 1.0, 10, extra_key=True)
    with pytest.raises(AverageError, match="different model keys"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    save_checkpoint(
        tmp_path / "c.pt",
        {
            "model": {
                "w": torch.zeros(3, 2),
                "b": torch.zeros(3),
                "h": torch.zeros(2),
                "count": torch.tensor(1),
            }
        },
    )
    with pytest.raises(AverageError, match="shape"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "c.pt"])
    with pytest.raises(AverageError, match="not found"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "missing.pt"])
    with pytest.raises(AverageError):
        average_checkpoints([])
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "foreign.pt")  # no nmt format marker
    with pytest.raises(AverageError, match="not an nmt checkpoint"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "foreign.pt"])


def test_cli_files(tmp_path, capsys):
    save_ckpt(tmp_path / "a.pt", 1.0, 10)
    save_ckpt(tmp_path / "b.pt", 3.0, 20)
    out = tmp_path / "avg" / "averaged.pt"
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "-o", str(out)]) == 0
    got = load_checkpoint(out)  # a complete nmt checkpoint, format-checked
    assert torch.allclose(got["model"]["w"], torch.full((2, 3), 2.0))
    assert not [p for p in out.parent.iterdir() if p.name != "averaged.pt"]  # no temp files


def test_cli_last(tmp_path):
    ckdir = tmp_path / "run" / "checkpoints"
    # step numbers sort numerically (step_9 < step_10 < step_100), not as strings
    for step, value in [(9, 100.0), (10, 1.0), (100, 2.0), (1000, 6.0)]:
        save_ckpt(ckdir / f"step_{step}.pt", value, step)
    save_ckpt(ckdir / "last.pt", 50.0, 1000)
    save_ckpt(ckdir / "best.pt", 50.0, 1000)
    assert [p.name for p in last_checkpoints(tmp_path / "run", 3)] == [
        "step_10.pt",
        "step_100.pt",
        "step_1000.pt",
    ]
    out = tmp_path / "averaged.pt"
    assert main([str(tmp_path / "run"), "--last", "3", "-o", str(out)]) == 0
    got = load_checkpoint(out)  # a complete nmt checkpoint, format-checked
    assert torch.allclose(got["model"]["w"], torch.full((2, 3), 3.0))
    assert got["step"] == 10 and got["model"]["count"].item() == 1000


def test_cli_errors(tmp_path, capsys):
    save_ckpt(tmp_path / "a.pt", 1.0, 10)
    out = tmp_path / "o.pt"
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "nope.pt"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "nope.pt" in err and len(err.strip().splitlines()) == 1
    save_ckpt(tmp_path / "run" / "checkpoints" / "step_5.pt", 1.0, 5)
    assert main([str(tmp_path / "run"), "--last", "2", "-o", str(out)]) == 2
    assert "only 1" in capsys.readouterr().err
    assert not out.exists()
