"""nmt.bench (`scripts/bench.py`): analytic FLOPs agree with PyTorch's FLOP counter and with the
numbers the benchmark gave before it became a package; a tiny run writes bench.json."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import ROOT

from nmt.bench.flops import AttentionMacs, attention_macs, rnn_forward_macs, train_flops
from nmt.bench.workload import build_config, workload_overrides
from nmt.config import AttentionConfig, RNNConfig
from nmt.models.mechanisms import MECHANISMS
from nmt.runtime import cpu_capability

TINY = {
    "rnn": ["model.emb_size=24", "model.enc_hidden=16", "model.dec_hidden=32"],
    "transformer": ["model.d_model=32", "model.ff_size=48", "model.heads=2"],
}


def _args(**kw) -> SimpleNamespace:
    """The benchmark's own defaults (every option), one thread, fp32, with `kw` applied."""
    from nmt.bench.cli import parse

    base = vars(parse(["--threads", "1", "--precision", "fp32", "--device", "cpu"]))
    base.update(data_root=None, **kw)
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
    cfg = build_config(workload_overrides(name, _args()) + TINY[family])
    V, S, T = 50, 9, 11
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.attention, V, V).eval()
    src, tgt = torch.randint(4, V, (1, S)), torch.randint(4, V, (1, T))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(src, torch.tensor([S]), tgt)
    counted = counter.get_total_flops()
    analytic = train_flops(cfg, V, [S], [T]) / 3  # forward only
    m = cfg.model
    if family == "transformer":
        D = m.d_model
        unseen = 2 * 2 * D * (m.enc_layers * S * S + m.dec_layers * (T * T + S * T))
    else:
        unseen = 2 * S * 2 * 4 * m.enc_hidden * (m.emb_size + m.enc_hidden)  # 2 directions
    assert 0.98 * (analytic - unseen) <= counted <= 1.02 * analytic, (counted, analytic, unseen)


def test_flops_scale_with_lengths():
    cfg = build_config(workload_overrides("transformer", _args()))
    one = train_flops(cfg, 8000, [10], [12])
    assert train_flops(cfg, 8000, np.array([10, 10]), np.array([12, 12])) == 2 * one
    # the output projection dominates per target token: 3 x 2 x d_model x V at least
    assert one / 12 > 6 * 256 * 8000


# --- the RNN FLOP model, per attention mechanism ------------------------------------------------
REFERENCE_RNN = RNNConfig(emb_size=256, enc_hidden=128, dec_hidden=256)  # the bench's rnn_*
OTHER_RNN = RNNConfig(
    cell="gru",
    emb_size=64,
    enc_hidden=96,
    bidirectional=False,
    enc_layers=2,
    dec_hidden=80,
    dec_layers=2,
    input_feed=False,
)
LENGTHS = ([7, 25, 30], [9, 22, 31])  # S, T of three sentences; 25 and 30 exceed a local window
# rnn_forward_macs(model, AttentionConfig(type, score), 8000, *LENGTHS) as computed by
# scripts/bench.py at commit 5bbeac1, before the benchmark became the package nmt.bench and the
# per-mechanism part moved into attention_macs. The split must not move any of them.
RECORDED_MACS = {
    ("ref", "bahdanau", None): 221416960.0,
    ("ref", "luong_dot", None): 209227264.0,
    ("ref", "luong_general", None): 213290496.0,
    ("ref", "luong_concat", None): 217353728.0,
    ("ref", "luong_location", None): 210863872.0,
    ("ref", "local_m", "dot"): 209039360.0,
    ("ref", "local_m", "general"): 213102592.0,
    ("ref", "local_m", "concat"): 217165824.0,
    ("ref", "local_p", "dot"): 213118464.0,
    ("ref", "local_p", "general"): 217181696.0,
    ("ref", "local_p", "concat"): 221244928.0,
    ("other", "bahdanau", None): 54298320.0,
    ("other", "luong_dot", None): 51679440.0,
    ("other", "luong_general", None): 52155600.0,
    ("other", "luong_concat", None): 52552400.0,
    ("other", "luong_location", None): 52190880.0,
    ("other", "local_m", "dot"): 51614848.0,
    ("other", "local_m", "general"): 52091008.0,
    ("other", "local_m", "concat"): 52487808.0,
    ("other", "local_p", "dot"): 52016608.0,
    ("other", "local_p", "general"): 52492768.0,
    ("other", "local_p", "concat"): 52889568.0,
}


def _attention(kind: str, score: str | None) -> AttentionConfig:
    return AttentionConfig(type=kind, **({"score": score} if score else {}))


def test_recorded_macs_cover_every_mechanism():
    assert {kind for _, kind, _ in RECORDED_MACS} == set(MECHANISMS)


@pytest.mark.parametrize("key", sorted(RECORDED_MACS, key=str), ids=str)
def test_rnn_macs_unchanged_for_every_mechanism(key):
    model = {"ref": REFERENCE_RNN, "other": OTHER_RNN}[key[0]]
    macs = rnn_forward_macs(model, _attention(*key[1:]), 8000, *LENGTHS)
    assert macs == RECORDED_MACS[key]


def _reference_rnn_macs_by_hand(kind: str, S: int, T: int) -> int:
    """Forward multiply-adds of one sentence pair, REFERENCE_RNN, V = 8000, written out term by
    term for bahdanau and local_m (general score, window D = 10) independently of nmt.bench."""
    E, h, H, V = 256, 128, 256, 8000
    K = A = 2 * h  # bi-LSTM output = attention size = decoder hidden
    encoder = S * 2 * 4 * h * (E + h)  # both directions, 4 gates, input E, recurrent h
    keys = S * K * A  # bahdanau U_a h_j; general W_a h_s
    bridge = K * H
    output = T * H * V
    if kind == "bahdanau":
        decoder = T * 4 * H * (E + K + H)  # input: embedding + previous context
        query = T * H * A  # W_a s_{t-1}
        readout = T * (H + K + E) * H
        pairs = S * T * (A + K)  # v_a . tanh(...) and the context
        return encoder + keys + bridge + decoder + query + readout + output + pairs
    assert kind == "local_m"
    decoder = T * 4 * H * (E + H + H)  # input: embedding + the fed attentional vector
    readout = T * (K + H) * H  # W_c [c_t; h_t]
    pairs = min(S, 21) * T * (A + K)  # q . W_a h_s and the context, 2D+1 = 21 positions
    return encoder + keys + bridge + decoder + readout + output + pairs


@pytest.mark.parametrize("kind", ["bahdanau", "local_m"])
@pytest.mark.parametrize("S, T", [(7, 9), (30, 31)])
def test_rnn_macs_match_a_derivation_by_hand(kind, S, T):
    att = AttentionConfig(type=kind, score="general", window=10)
    assert rnn_forward_macs(REFERENCE_RNN, att, 8000, [S], [T]) == _reference_rnn_macs_by_hand(
        kind, S, T
    )


def test_attention_macs_per_mechanism():
    H, K, A = 6, 10, 6
    cases = {
        "bahdanau": AttentionMacs(K * A, H * A, A + K, None, True),
        "luong_dot": AttentionMacs(0, 0, A + K, None, False),
        "luong_general": AttentionMacs(K * A, 0, A + K, None, False),
        "luong_concat": AttentionMacs(K * A, H * A, A + K, None, False),
        "luong_location": AttentionMacs(0, H * 128, K, None, False),
        "local_m": AttentionMacs(0, 0, A + K, 7, False),  # dot score, D = 3
        "local_p": AttentionMacs(K * A, H * A + H * H + H, A + K, 7, False),  # concat score
    }
    score = {"local_m": "dot", "local_p": "concat"}
    for kind, expected in cases.items():
        att = AttentionConfig(type=kind, score=score.get(kind, "general"), window=3)
        assert attention_macs(att, H, K, A) == expected, kind


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


@pytest.mark.slow
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
        "--min-len", "3", "--max-len", "3",
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
    assert r["greedy_hyp_len_mean"] == r["beam5_hyp_len_mean"] == 3  # --min-len 3 --max-len 3
    assert "every output 3 tokens" in proc.stdout
    m = report["meta"]
    assert m["decode_min_len"] == m["decode_max_len"] == 3
    assert m["torch"] == torch.__version__ and m["cpu"]
    # --precision auto: bf16 exactly where the CPU has native bf16 matmuls
    bf16_cpu = bool({"avx512_bf16", "amx_bf16"} & set(m["cpu_flags"]))
    assert m["precision"] == r["precision"] == ("bf16" if bf16_cpu else "fp32")
    assert set(m["matmul_peak_flops"]) == ({"fp32", "bf16"} if bf16_cpu else {"fp32"})
    # the workload's MFU is against the larger of the run's peak and its child's own
    start = m["matmul_peak_flops"][r["precision"]]
    assert r["matmul_peak_after_flops"] > 0
    assert r["matmul_peak_flops"] == max(start, r["matmul_peak_after_flops"])
    assert r["mfu"] == round(
        r["flops_per_tgt_token"] * r["train_tgt_tokens_per_s"] / r["matmul_peak_flops"], 5
    )
    assert m["cpu_capability"] == cpu_capability()
    sizes = report["preprocess"]["sizes"]
    assert [s["lines"] for s in sizes] == [160, 480] and all(s["peak_rss_mb"] > 0 for s in sizes)
    assert report["preprocess"]["peak_rss_ratio_largest_to_smallest"] > 0


# --- configuration and decoding ------------------------------------------------------------------
def test_mfu_is_against_the_larger_matmul_peak():
    """A slow start-of-run peak reading does not inflate a workload's MFU, nor a slow one after."""
    from nmt.bench.cli import workload_mfu

    base = {"precision": "fp32", "flops_per_tgt_token": 1e6, "train_tgt_tokens_per_s": 100.0}
    slow_start = {**base, "matmul_peak_after_flops": 2e8}
    workload_mfu(slow_start, {"fp32": 1e8, "bf16": 9e9})
    assert slow_start["matmul_peak_flops"] == 2e8 and slow_start["mfu"] == 0.5
    slow_after = {**base, "matmul_peak_after_flops": 1e8}
    workload_mfu(slow_after, {"fp32": 4e8})
    assert slow_after["matmul_peak_flops"] == 4e8 and slow_after["mfu"] == 0.25
    bf16 = {**base, "precision": "bf16"}  # a record without its own peak: the run's
    workload_mfu(bf16, {"fp32": 1e8, "bf16": 5e8})
    assert bf16["matmul_peak_flops"] == 5e8 and bf16["mfu"] == 0.2


def test_decode_batch_default_is_the_decode_config_default():
    from nmt.bench.cli import parse
    from nmt.config import DecodeConfig

    assert parse([]).decode_batch == DecodeConfig().batch_size
    assert parse(["--decode-batch", "7"]).decode_batch == 7
    assert "decode.batch_size=7" in workload_overrides("transformer", _args(decode_batch=7))


def test_compose_config_needs_no_training_entry_point():
    """compose_config registers the structured configs itself: `nmt.train` is not imported."""
    code = (
        "import sys\n"
        "from nmt.compose import compose_config\n"
        "cfg = compose_config(['attention=luong_dot', 'trainer.lr=0.5'])\n"
        "assert type(cfg) is dict, type(cfg)\n"
        "assert cfg['attention']['type'] == 'luong_dot' and cfg['trainer']['lr'] == 0.5, cfg\n"
        "assert 'nmt.train' not in sys.modules and 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_checkpoint_decoding_is_the_translators(trained_run):
    """--decode-ckpt RUN: the run's best.pt, text prepared and decoded as nmt-translate does."""
    from nmt.bench.decode import checkpoint_target
    from nmt.translate import Translator

    lines = (trained_run.parent / "data" / "test.src").read_text().splitlines()[:6]
    refs = (trained_run.parent / "data" / "test.tgt").read_text().splitlines()[:6]
    translator = Translator(trained_run / "checkpoints" / "best.pt", precision="fp32")  # as args
    batch = translator.cfg.decode.batch_size
    args = SimpleNamespace(precision="fp32", decode_batch=batch, min_len=0, max_len=None)
    test = SimpleNamespace(src_text=lines, tgt_text=refs)
    target = checkpoint_target(str(trained_run), args, torch.device("cpu"), test, 5)
    assert target.origin == str(trained_run / "checkpoints" / "best.pt")
    assert target.references == refs[:5] and len(target.sources) == 5
    hyps = target.translate(target.sources, 1)
    expected, _ = translator.translate(lines[:5], beam=1, batch_size=batch)
    assert target.tokenizer.decode_tgt([h.tokens for h in hyps]) == expected


def test_decode_deploy_targets_int8_and_ctranslate2(explore_runs, tmp_path, stand_in_eflomal):
    """--decode-deploy: the checkpoint decoded in int8, over a vocabulary shortlist (built into
    the scratch folder: the run has none; float and int8) and, a Transformer, through
    CTranslate2 (float32, int8; without and with the shortlist as its vocabulary map), each with
    speed, output tokens/s, length and BLEU; an RNN has no CTranslate2.
    --min-len 5 --max-len 5 holds for every engine (CTranslate2's own length options)."""
    if importlib.util.find_spec("ctranslate2") is None:  # found, not imported (tests/test_ct2.py)
        pytest.skip("the deploy extra (ctranslate2) is not installed")
    from nmt.bench.decode import _time_target, deploy_targets

    data = explore_runs.parent / "data"
    test = SimpleNamespace(
        src_text=(data / "test.src").read_text().splitlines()[:10],
        tgt_text=(data / "test.tgt").read_text().splitlines()[:10],
    )
    args = SimpleNamespace(
        precision="fp32", decode_batch=4, work=str(tmp_path), min_len=5, max_len=5
    )
    targets = deploy_targets(str(explore_runs / "model=transformer"), args, test, 10)
    assert set(targets) == {
        *("int8", "shortlist", "int8_shortlist", "ct2", "ct2_int8"),
        *("ct2_shortlist", "ct2_int8_shortlist"),
    }
    out: dict = {}
    for label, load in targets.items():  # each loaded when it is timed
        hyps = _time_target(load(), "cpu", f"{label}_", out)
        assert len(hyps) == 10
        for key in ("greedy", "beam5"):
            assert out[f"{label}_{key}_sents_per_s"] > 0 and 0 <= out[f"{label}_{key}_bleu"] <= 100
            assert out[f"{label}_{key}_tokens_per_s"] > 0
            assert out[f"{label}_{key}_hyp_len_mean"] == 5
    assert (tmp_path / "ctranslate2" / "model.bin").is_file()
    assert not (tmp_path / "ctranslate2" / "vmap.txt").exists()
    assert (tmp_path / "ctranslate2-shortlist" / "vmap.txt").is_file()
    assert len(list(tmp_path.glob("shortlist-*.npz"))) == 1
    rnn = deploy_targets(str(explore_runs / "attention=luong_general"), args, test, 10)
    assert set(rnn) == {"int8", "shortlist", "int8_shortlist"}
    assert len(list(tmp_path.glob("shortlist-*.npz"))) == 2  # one per run


@pytest.mark.slow
def test_whole_run_mode_trains_side_by_side_and_records_peak_rss(tmp_path):
    """--whole-run: nmt-train per workload, side by side; each run's peak RSS, steps and test
    BLEU in bench.json, its run folder (metrics.json, test.hyp) in --work."""
    corpus = _tiny_corpus(tmp_path / "multi30k")
    out, work = tmp_path / "bench.json", tmp_path / "work"
    sets = [f"rnn:{o}" for o in TINY["rnn"]] + [f"transformer:{o}" for o in TINY["transformer"]]
    sets += ["data.vocab_size=60", "trainer.max_tokens=200", "transformer:model.enc_layers=1"]
    sets += ["transformer:model.dec_layers=1"]
    cmd = [
        sys.executable, str(ROOT / "scripts" / "bench.py"),
        "--data-root", str(corpus),
        "--workloads", "rnn_bahdanau,transformer",
        "--whole-run", "2", "--threads", "1", "--precision", "fp32",
        "--out", str(out), "--work", str(work),
    ] + [arg for s in sets for arg in ("--set", s)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "whole runs (nmt-train)" in proc.stdout and "peak RSS" in proc.stdout
    runs = json.loads(out.read_text())["whole_run"]
    assert list(runs) == ["rnn_bahdanau", "transformer"]
    for name, r in runs.items():
        assert 100 < r["peak_rss_mb"] < 8192, name  # a Python process with torch loaded
        assert r["steps"] > 0 and r["test_bleu"] is not None, name
        assert r["side_by_side"] == 2 and r["threads"] == 1 and r["seconds"] == 2
        hyps = (work / f"whole-{name}" / "test.hyp").read_text().splitlines()
        assert len(hyps) == 10  # the tiny corpus's test sentences, one line each
    bad = subprocess.run([*cmd[:2], "--whole-run", "0"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "--whole-run 0" in bad.stderr
