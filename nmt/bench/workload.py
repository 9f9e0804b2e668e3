"""The reference workload (its config overrides) and one training measurement (a child process).

numpy and torch are imported inside the functions: the parent imports this module before it
sets OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.bench.decode import run_decode
from nmt.bench.flops import train_flops
from nmt.bench.system import matmul_peak, rss_mb, sync
from nmt.compose import compose_config
from nmt.config import Config, to_dataclass
from nmt.runtime import StderrHandler


def all_workloads() -> tuple[str, ...]:
    """rnn_<mechanism> for every mechanism of the table, then the Transformer (imports torch)."""
    from nmt.models.mechanisms import MECHANISMS

    return tuple(f"rnn_{m}" for m in MECHANISMS) + ("transformer",)


# The reference workload, stated in full so that a changed preset in conf/ cannot move it.
COMMON = [
    "data=multi30k",
    "data.spm_type=unigram",
    "data.vocab_size=8000",
    "data.joint_vocab=true",
    "trainer.max_tokens=4096",
    "trainer.optimizer=adam",
    "trainer.lr=3e-4",
    "trainer.schedule=constant",  # the reference (and the peers' configs): a constant 3e-4
    "trainer.label_smoothing=0.1",
    "trainer.num_heatmaps=0",
    "decode.beam=5",
]
RNN = [
    "model=rnn",
    "model.cell=lstm",
    "model.emb_size=256",
    "model.enc_hidden=128",
    "model.bidirectional=true",
    "model.enc_layers=1",
    "model.dec_hidden=256",
    "model.dec_layers=1",
    "model.input_feed=true",
    "model.dropout=0.2",
    "model.tie_embeddings=false",
]
TRANSFORMER = [
    "model=transformer",
    "model.d_model=256",
    "model.heads=4",
    "model.ff_size=1024",
    "model.enc_layers=3",
    "model.dec_layers=3",
    "model.pre_norm=true",
    "model.dropout=0.1",
    "model.attention_dropout=0.1",
    "model.tie_embeddings=true",
    "model.tie_all=false",
]


# --- configuration ---------------------------------------------------------------------------
def workload_overrides(name: str, args: argparse.Namespace) -> list[str]:
    """Hydra overrides of workload `name` with the run's settings and `--set` items applied."""
    if name == "transformer":
        family, model = "transformer", TRANSFORMER
    elif name.startswith("rnn_") and name in all_workloads():
        family, model = "rnn", [*RNN, f"attention={name[4:]}"]
    else:
        raise SystemExit(
            f"bench: unknown workload {name!r}; choose from {', '.join(all_workloads())}"
        )
    out = [
        *COMMON,
        *model,
        f"trainer.threads={args.threads}",
        f"trainer.precision={args.precision}",
        f"trainer.device={args.device}",
        f"decode.batch_size={args.decode_batch}",
        f"decode.min_len={args.min_len}",
        f"decode.max_len={'null' if args.max_len is None else args.max_len}",
        f"seed={args.seed}",
    ]
    if args.data_root:
        out.append(f"data.root={args.data_root}")
    for item in args.set:
        prefix, sep, rest = item.partition(":")
        if sep and prefix in ("rnn", "transformer"):
            if prefix == family:
                out.append(rest)
        else:
            out.append(item)
    return out


def build_config(overrides: list[str]) -> Config:
    """The validated Config the overrides describe (as `nmt-train` would build it)."""
    return to_dataclass(compose_config(overrides))


def quiet_logger() -> logging.Logger:
    log = logging.getLogger("nmt.bench")
    if not log.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def prepare_shared_data(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Train the tokenizer and encode the training split once; every workload reuses them."""
    from nmt.data import prepare_data

    cfg = build_config(workload_overrides(names[0], args))
    tick = time.perf_counter()
    bundle = prepare_data(cfg.data, Path(args.work) / "run", None, cfg.seed, quiet_logger())
    return {
        "corpus": cfg.data.root,
        "train_pairs": len(bundle.train),
        "test_sentences": len(bundle.test),
        "vocab": bundle.tokenizer.tgt_vocab_size,
        "prepare_s": round(time.perf_counter() - tick, 2),
    }


# --- one training workload (child process) -----------------------------------------------------
@dataclass
class Training:
    """W warm-up then N timed steps: times, token counts and the timed sentences' lengths."""

    warmup_s: float
    train_s: float
    n_src: int  # non-padding source tokens of the timed steps (EOS included)
    n_tgt: int
    S: Any  # (n_sentences,) source positions of every timed sentence (tokens + EOS)
    T: Any  # (n_sentences,) target positions (tokens + EOS)
    losses: list  # per timed step; None for a skipped step
    peak_rss_mb: float  # right after the timed steps


def _endless_batches(sampler):
    epoch = 0
    while True:
        yield from sampler.batches(epoch)
        epoch += 1


def measure_training(trainer: Any, warmup: int, steps: int) -> Training:
    """`Trainer.train_step` on the trainer's own batches; collate and the copy are timed too."""
    import numpy as np

    from nmt.data.batching import collate

    train, device = trainer.data.train, trainer.device

    def step(idx) -> tuple[int, int, float | None]:
        batch = collate([train.src[i] for i in idx], [train.tgt[i] for i in idx], idx)
        batch = batch.to(device)
        losses = trainer.train_step(batch)
        return batch.n_src_tokens, batch.n_tgt_tokens, None if losses is None else losses["loss"]

    src_len, tgt_len = train.src.lengths, train.tgt.lengths
    it = _endless_batches(trainer.sampler)
    tick = time.perf_counter()
    for _ in range(warmup):
        step(next(it))
    sync(device)
    warmup_s = time.perf_counter() - tick
    n_src = n_tgt = 0
    S_all, T_all, losses = [], [], []
    tick = time.perf_counter()
    for _ in range(steps):
        idx = next(it)
        s, t, loss = step(idx)
        n_src, n_tgt = n_src + s, n_tgt + t
        S_all.append(src_len[idx] + 1)
        T_all.append(tgt_len[idx] + 1)
        losses.append(loss)
    sync(device)
    train_s = time.perf_counter() - tick
    peak = rss_mb()
    S, T = np.concatenate(S_all), np.concatenate(T_all)
    assert int(T.sum()) == n_tgt and int(S.sum()) == n_src
    return Training(warmup_s, train_s, n_src, n_tgt, S, T, losses, peak)


def training_record(
    args: argparse.Namespace, cfg: Config, trainer: Any, m: Training, rss_start: float
) -> dict[str, Any]:
    """bench.json's training fields of one workload."""
    import torch

    from nmt.models import count_parameters

    name = args.one
    flops = train_flops(cfg, trainer.tokenizer.tgt_vocab_size, m.S, m.T)
    return {
        "workload": name,
        "model": getattr(cfg.model, "arch", "?"),
        "attention": cfg.attention.type if name.startswith("rnn_") else None,
        "params": count_parameters(trainer.model),
        "precision": cfg.trainer.precision,
        "threads": torch.get_num_threads(),
        "device": str(trainer.device),
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "warmup_s": round(m.warmup_s, 3),
        "train_s": round(m.train_s, 3),
        "train_src_tokens": m.n_src,
        "train_tgt_tokens": m.n_tgt,
        "train_sentences": int(len(m.T)),
        "train_src_tokens_per_s": round(m.n_src / m.train_s, 1),
        "train_tgt_tokens_per_s": round(m.n_tgt / m.train_s, 1),
        "tgt_tokens_per_step": round(m.n_tgt / max(args.steps, 1), 1),
        "loss_first": next((x for x in m.losses if x is not None), None),
        "loss_last": next((x for x in reversed(m.losses) if x is not None), None),
        "skipped_steps": sum(x is None for x in m.losses),
        "flops_per_tgt_token": round(flops / max(m.n_tgt, 1)),
        "train_flops_per_s": round(flops / m.train_s),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "peak_gpu_mb": (  # the CUDA caching allocator's peak; RSS counts host memory only
            round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if torch.device(trainer.device).type == "cuda"
            else None
        ),
    }


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """The child for `--one NAME`: build the Trainer, time training, then decoding."""
    import torch

    torch.set_num_threads(args.threads)
    rss_start = rss_mb("VmRSS")
    from nmt.trainer import Trainer

    name = args.one
    cfg = build_config(workload_overrides(name, args))
    trainer = Trainer(cfg, Path(args.work) / "run")
    stats = trainer.data.stats
    if not (stats.get("tokenizer_cached") and stats.get("train_cached")):
        print(f"bench: warning: {name} did not reuse the prepared data ({stats})", file=sys.stderr)
    result = training_record(
        args, cfg, trainer, measure_training(trainer, args.warmup, args.steps), rss_start
    )
    result.update(run_decode(args, trainer, name))
    result["peak_rss_total_mb"] = round(rss_mb(), 1)
    # the peak again, in this process once its work is done (and its peak RSS read): one 1-s
    # measurement at the start of a long run can catch a slow moment of a shared machine
    # (`cli.workload_mfu`)
    result["matmul_peak_after_flops"] = round(
        matmul_peak(result["precision"], args.peak_size, trainer.device)
    )
    return result
