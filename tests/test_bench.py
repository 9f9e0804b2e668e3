"""scripts/bench.py: analytic FLOPs agree with PyTorch's FLOP counter; a tiny run writes bench.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import ROOT

from nmt.runtime import cpu_capability

sys.path.insert(0, str(ROOT / "scripts"))
import bench  # noqa: E402

TINY = {
    "rnn": ["model.emb_size=24", "model.enc_hidden=16", "model.dec_hidden=32"],
    "transformer": ["model.d_model=32", "model.ff_size=48", "model.heads=2"],
}


def _args(**kw) -> SimpleNamespace:
    base = dict(
        threads=1, precision="fp32", device="cpu", seed=1, data_root=None, set=[], decode_batch=64
    )
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    "name", ["transformer", "rnn_bahdanau", "rnn_luong_general", "rnn_local_p"]
)
def test_analytic_flops_match_the_flop_counter(name):
    """Forward matmul FLOPs of one unpadded sentence pair: the formula vs FlopCounterMode.

    The counter sees neither the packed (variable-length) encoder LSTM nor CPU
    scaled_dot_product_attention, so the counted FLOPs must lie between the analytic total
    without and with those parts.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from nmt.models import build_model

    family = "transformer" if name == "transformer" else "rnn"
    cfg = bench.compose(bench.workload_overrides(name, _args()) + TINY[family])
    V, S, T = 50, 9, 11
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.attention, V, V).eval()
    src, tgt = torch.randint(4, V, (1, S)), torch.randint(4, V, (1, T))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(src, torch.tensor([S]), tgt)
    counted = counter.get_total_flops()
    analytic = bench.train_flops(cfg, V, [S], [T]) / 3  # forward only
    m = cfg.model
    if family == "transformer":
        D = m.d_model
        unseen = 2 * 2 * D * (m.enc_layers * S * S + m.dec_layers * (T * T + S * T))
    else:
        unseen = 2 * S * 2 * 4 * m.enc_hidden * (m.emb_size + m.enc_hidden)  # 2 directions
    assert 0.98 * (analytic - unseen) <= counted <= 1.02 * analytic, (counted, analytic, unseen)


def test_flops_scale_with_lengths():
    cfg = bench.compose(bench.workload_overrides("transformer", _args()))
    one = bench.train_flops(cfg, 8000, [10], [12])
    assert bench.train_flops(cfg, 8000, np.array([10, 10]), np.array([12, 12])) == 2 * one
    # the output projection dominates per target token: 3 x 2 x d_model x V at least
    assert one / 12 > 6 * 256 * 8000


def _tiny_corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    en = "a man woman dog cat runs sits on the in park street red big small".split()
    de = "ein mann frau hund katze läuft sitzt auf dem im park straße rot groß klein".split()
    root.mkdir(parents=True)
    for prefix, n in (("train", 160), ("val", 12), ("test_2016_flickr", 10)):
        idx = [rng.integers(0, len(en), size=int(rng.integers(3, 9))) for _ in range(n)]
        (root / f"{prefix}.en").write_text("".join(" ".join(en[i] for i in s) + "\n" for s in idx))
        (root / f"{prefix}.de").write_text("".join(" ".join(de[i] for i in s) + "\n" for s in idx))
    return root


def test_tiny_bench_run_writes_json(tmp_path):
    """Every documented field, one entry per workload, preprocessing at two sizes."""
    corpus = _tiny_corpus(tmp_path / "multi30k")
    out = tmp_path / "bench.json"
    sets = [f"rnn:{o}" for o in TINY["rnn"]] + ["data.vocab_size=60", "trainer.max_tokens=200"]
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "bench.py"),
        "--data-root", str(corpus),
        "--workloads", "rnn_bahdanau",
        "--steps", "2", "--warmup", "1", "--threads", "1",
        "--decode-sents", "4",
        "--peak-size", "64",
        "--preprocess-repeats", "1,3",
        "--spm-train-lines", "200",
        "--out", str(out),
    ] + [arg for s in sets for arg in ("--set", s)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"results written to {out}" in proc.stdout and "MFU" in proc.stdout
    report = json.loads(out.read_text())
    assert report["workloads"] == ["rnn_bahdanau"]
    r = report["rnn_bahdanau"]
    for key in (
        "train_tgt_tokens_per_s",
        "train_src_tokens_per_s",
        "greedy_sents_per_s",
        "beam5_sents_per_s",
        "peak_rss_mb",
        "params",
        "mfu",
        "flops_per_tgt_token",
    ):
        assert r[key] > 0, key
    assert r["decode_sents"] == 4 and r["steps"] == 2 and r["threads"] == 1
    m = report["meta"]
    assert m["torch"] == torch.__version__ and m["cpu"]
    # --precision auto: bf16 exactly where the CPU has native bf16 matmuls
    bf16_cpu = bool({"avx512_bf16", "amx_bf16"} & set(m["cpu_flags"]))
    assert m["precision"] == r["precision"] == ("bf16" if bf16_cpu else "fp32")
    assert set(m["matmul_peak_flops"]) == ({"fp32", "bf16"} if bf16_cpu else {"fp32"})
    assert m["cpu_capability"] == cpu_capability()
    sizes = report["preprocess"]["sizes"]
    assert [s["lines"] for s in sizes] == [160, 480] and all(s["peak_rss_mb"] > 0 for s in sizes)
    assert report["preprocess"]["peak_rss_ratio_largest_to_smallest"] > 0
