"""`make bench`: the reference workload of the performance issue, measured through nmt's own code.

Workload (the same for nmt and the peers): Multi30k en->de from $NMT_DATA_ROOT/multi30k, joint
SentencePiece unigram 8k, token batches of ~4096 target tokens, Adam 3e-4, label smoothing 0.1,
2 torch threads.
- `rnn_<mechanism>`: embeddings 256, 1-layer bi-LSTM encoder 128 per direction, 1-layer LSTM
  decoder 256, input feeding, dropout 0.2, attention `<mechanism>` (bahdanau, luong_dot, ...).
- `transformer`: 3+3 layers, d_model 256, 4 heads, FF 1024, pre-norm, dropout 0.1.

For each workload, in a fresh child process (so that peak RSS is per workload): the project's
`Trainer` is built from the composed Hydra config (data from `prepare_data`, reusing one
tokenizer and one encoded training split for every workload), then W warm-up and N timed
`Trainer.train_step` calls on the trainer's own length-bucketed batches (collate and the copy to
the device included in the timed loop); then greedy and beam-5 decoding of test2016 (batch 64)
through `Trainer.translate_ids`. Tokens are non-padding tokens (EOS included). MFU = analytic
training FLOPs per target token x target tokens/s / the matmul peak measured in the same run
(torch.mm, 2048x2048, same threads and precision).

`--preprocess` (also part of the default run) measures streaming preprocessing (`prepare_data`:
tokenizer training on a sample, encoding, memory-mapped ids) on Multi30k repeated 1x, 10x and
100x (29k, 290k, 2.9M lines), each size in a fresh child process: lines/s and peak RSS.

    python scripts/bench.py                                   # everything, writes bench.json
    python scripts/bench.py --workloads rnn_bahdanau,transformer --steps 50 --precision fp32
    python scripts/bench.py --preprocess                      # preprocessing only
    python scripts/bench.py --decode-ckpt transformer=outputs/RUN   # decode a trained model

Decoding speed depends on output lengths: a model trained for only W+N steps rarely emits EOS
early, so its hypotheses run to the length limit. For figures comparable to trained peers pass
`--decode-ckpt NAME=RUN_DIR_OR_CKPT`; the hypothesis lengths (and BLEU for a checkpoint) are
recorded beside the speeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nmt.models.mechanisms import MECHANISMS  # noqa: E402

ALL_WORKLOADS = tuple(f"rnn_{m}" for m in MECHANISMS) + ("transformer",)

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
]


# --- measuring -------------------------------------------------------------------------------
def rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process in MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_precision(device: str) -> str:
    """The precision `auto` means here: the one rule of `nmt.runtime.resolve_precision`."""
    import torch

    from nmt.runtime import resolve_precision

    dev = "cuda" if device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
    return resolve_precision("auto", torch.device(dev), "--precision").name


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype_name: str, n: int, device: str, seconds: float = 1.0) -> float:
    """Best sustained FLOP/s of torch.mm on n x n matrices (2 n^3 FLOPs each)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        torch.mm(a, b)
    sync(device)
    best = 0.0
    for _ in range(3):
        count, tick = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            count += 1
            sync(device)
            elapsed = time.perf_counter() - tick
            if elapsed >= seconds / 3:
                break
        best = max(best, 2.0 * n**3 * count / elapsed)
    return best


# --- analytic FLOPs ----------------------------------------------------------------------------
# Matmul FLOPs only (a multiply-add = 2 FLOPs); elementwise ops, softmax and the loss are not
# counted. Training = forward + backward ~= 3 x forward. Per sentence b: S_b source positions
# (tokens + EOS), T_b target positions (tokens + EOS = BOS + tokens). Encoder work is counted per
# source position, decoder/attention/output work per target position and attention scores and
# contexts per (target, source) pair; `flops_per_tgt_token` = the batch total / target tokens.
def rnn_forward_macs(model: Any, att: Any, tgt_vocab: int, S: Any, T: Any) -> float:
    """RNN encoder-decoder (nmt.models.rnn), forward multiply-adds of sentences with lengths S, T.

    g = 4 gates (LSTM) or 3 (GRU); E emb; h = enc hidden per direction; d directions; K = d*h;
    H dec hidden; V target vocabulary; A = H (attention hidden size).
      per source position: encoder  sum_layers d * g*h*(in + h)   (in = E, then K)
                           key projection K*A (bahdanau U_a, general W_a, concat W2; dot/location: 0)
      per target position: decoder RNN g*H*(E + extra + H) (+ (L-1) * g*H*2H), extra = K (bahdanau
                           context) or H (input feeding) or 0
                           query projection H*A (bahdanau W_a, concat W1), H*max_src_len (location),
                           local-p adds W_p, v_p: H*H + H
                           readout (H + K + E)*H (bahdanau) or (K + H)*H (Luong W_c)
                           output H*V
      per (target, source) pair: score A (bahdanau/concat: v_a . tanh(...); dot/general: q . k)
                           + context K; local attention: only the 2D+1 window positions
      per sentence:        bridge K*H*L
    """
    import numpy as np

    S, T = np.asarray(S, dtype=np.float64), np.asarray(T, dtype=np.float64)
    g = 4 if model.cell == "lstm" else 3
    E, h, H, V = model.emb_size, model.enc_hidden, model.dec_hidden, tgt_vocab
    d = 2 if model.bidirectional else 1
    K, A = d * h, H
    enc = sum(d * g * h * ((E if layer == 0 else K) + h) for layer in range(model.enc_layers))
    kind = att.type
    score = att.score if kind in ("local_m", "local_p") else kind
    keys = (
        K * A if score in ("bahdanau", "luong_general", "general", "luong_concat", "concat") else 0
    )
    bahdanau = kind == "bahdanau"
    extra = K if bahdanau else (H if model.input_feed else 0)
    dec = g * H * (E + extra + H) + (model.dec_layers - 1) * g * H * 2 * H
    query = {"bahdanau": H * A, "luong_concat": H * A, "luong_location": H * att.max_src_len}.get(
        kind, 0
    )
    if score == "concat" and kind.startswith("local"):
        query += H * A
    if kind == "local_p":
        query += H * H + H
    readout = (H + K + E) * H if bahdanau else (K + H) * H
    per_tgt = dec + query + readout + H * V
    pair = (0 if kind == "luong_location" else A) + K
    pairs = np.minimum(S, 2 * att.window + 1) * T if kind.startswith("local") else S * T
    per_sentence = K * H * model.dec_layers
    return float((S * (enc + keys)).sum() + (T * per_tgt).sum() + pair * pairs.sum()) + (
        per_sentence * len(S)
    )


def transformer_forward_macs(model: Any, tgt_vocab: int, S: Any, T: Any) -> float:
    """Transformer (nmt.models.transformer), forward multiply-adds of sentences with lengths S, T.

    D d_model, F ff size, Le/Ld layers, V target vocabulary:
      per source position: Le*(4D^2 + 2DF) (self-attention Q,K,V,O and the FF)
                           + Ld*2D^2 (cross-attention K,V of the memory, once per decoder layer)
      per target position: Ld*(4D^2 + 2D^2 + 2DF) (self Q,K,V,O; cross Q,O; FF) + D*V (output)
      per pair:            2D per layer for Q.K^T and weights.V: encoder S^2 * Le, decoder
                           self-attention T^2 * Ld (the full square, the usual convention), cross
                           S*T * Ld
    """
    import numpy as np

    S, T = np.asarray(S, dtype=np.float64), np.asarray(T, dtype=np.float64)
    D, F, Le, Ld = model.d_model, model.ff_size, model.enc_layers, model.dec_layers
    per_src = Le * (4 * D * D + 2 * D * F) + Ld * 2 * D * D
    per_tgt = Ld * (6 * D * D + 2 * D * F) + D * tgt_vocab
    pairs = 2 * D * (Le * S * S + Ld * T * T + Ld * S * T)
    return float((S * per_src + T * per_tgt + pairs).sum())


def train_flops(cfg: Any, tgt_vocab: int, S: Any, T: Any) -> float:
    """Analytic training FLOPs (3 x forward, 2 FLOPs per multiply-add) of sentences S, T."""
    from nmt.config import RNNConfig

    if isinstance(cfg.model, RNNConfig):
        macs = rnn_forward_macs(cfg.model, cfg.attention, tgt_vocab, S, T)
    else:
        macs = transformer_forward_macs(cfg.model, tgt_vocab, S, T)
    return 3.0 * 2.0 * macs


# --- configuration ---------------------------------------------------------------------------
def workload_overrides(name: str, args: argparse.Namespace) -> list[str]:
    if name == "transformer":
        family, model = "transformer", TRANSFORMER
    elif name.startswith("rnn_") and name[4:] in MECHANISMS:
        family, model = "rnn", [*RNN, f"attention={name[4:]}"]
    else:
        raise SystemExit(
            f"bench: unknown workload {name!r}; choose from {', '.join(ALL_WORKLOADS)}"
        )
    out = [
        *COMMON,
        *model,
        f"trainer.threads={args.threads}",
        f"trainer.precision={args.precision}",
        f"trainer.device={args.device}",
        f"decode.batch_size={args.decode_batch}",
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


def compose(overrides: list[str]) -> Any:
    """The validated Config the overrides describe (as `nmt-train` would build it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    import nmt.train  # noqa: F401  (registers the structured configs)
    from nmt.config import to_dataclass

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides)
    return to_dataclass(OmegaConf.to_container(cfg, resolve=True))


def quiet_logger():
    import logging

    log = logging.getLogger("nmt.bench")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


# --- one training workload (child process) -----------------------------------------------------
def run_one(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    rss_start = rss_mb("VmRSS")
    from nmt.data.batching import collate
    from nmt.models import count_parameters
    from nmt.trainer import Trainer

    name = args.one
    cfg = compose(workload_overrides(name, args))
    run_dir = Path(args.work) / "run"
    trainer = Trainer(cfg, run_dir)
    stats = trainer.data.stats
    if not (stats.get("tokenizer_cached") and stats.get("train_cached")):
        print(f"bench: warning: {name} did not reuse the prepared data ({stats})", file=sys.stderr)
    train = trainer.data.train
    device = trainer.device
    tgt_vocab = trainer.tokenizer.tgt_vocab_size

    def batches():
        epoch = 0
        while True:
            yield from trainer.sampler.batches(epoch)
            epoch += 1

    def step(idx) -> tuple[int, int, float | None]:
        batch = collate([train.src[i] for i in idx], [train.tgt[i] for i in idx], idx)
        batch = batch.to(device)
        loss = trainer.train_step(batch)
        return batch.n_src_tokens, batch.n_tgt_tokens, loss

    src_len, tgt_len = train.src.lengths, train.tgt.lengths
    it = batches()
    tick = time.perf_counter()
    for _ in range(args.warmup):
        step(next(it))
    sync(device)
    warmup_s = time.perf_counter() - tick
    n_src = n_tgt = 0
    S_all, T_all, losses = [], [], []
    tick = time.perf_counter()
    for _ in range(args.steps):
        idx = next(it)
        s, t, loss = step(idx)
        n_src, n_tgt = n_src + s, n_tgt + t
        S_all.append(src_len[idx] + 1)
        T_all.append(tgt_len[idx] + 1)
        losses.append(loss)
    sync(device)
    train_s = time.perf_counter() - tick
    peak_train = rss_mb()
    S, T = np.concatenate(S_all), np.concatenate(T_all)
    assert int(T.sum()) == n_tgt and int(S.sum()) == n_src
    flops = train_flops(cfg, tgt_vocab, S, T)
    result: dict[str, Any] = {
        "workload": name,
        "model": getattr(cfg.model, "arch", "?"),
        "attention": cfg.attention.type if name.startswith("rnn_") else None,
        "params": count_parameters(trainer.model),
        "precision": cfg.trainer.precision,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "warmup_s": round(warmup_s, 3),
        "train_s": round(train_s, 3),
        "train_src_tokens": n_src,
        "train_tgt_tokens": n_tgt,
        "train_sentences": int(len(T)),
        "train_src_tokens_per_s": round(n_src / train_s, 1),
        "train_tgt_tokens_per_s": round(n_tgt / train_s, 1),
        "tgt_tokens_per_step": round(n_tgt / max(args.steps, 1), 1),
        "loss_first": next((x for x in losses if x is not None), None),
        "loss_last": next((x for x in reversed(losses) if x is not None), None),
        "skipped_steps": sum(x is None for x in losses),
        "flops_per_tgt_token": round(flops / max(n_tgt, 1)),
        "train_flops_per_s": round(flops / train_s),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(peak_train, 1),
    }
    result.update(run_decode(args, trainer, cfg, name))
    result["peak_rss_total_mb"] = round(rss_mb(), 1)
    return result


def _decode_model(args: argparse.Namespace, trainer: Any, name: str):
    """(translate(sources, beam), sources, references, tokenizer, origin) of the model to decode."""
    test = trainer.data.test
    k = (
        len(test.src_text)
        if args.decode_sents is None
        else min(args.decode_sents, len(test.src_text))
    )
    ckpts = dict(item.split("=", 1) for item in args.decode_ckpt)
    if name not in ckpts:
        sources = [test.src[i] for i in range(k)]
        return (
            lambda src, beam: trainer.translate_ids(src, beam),
            sources,
            test.tgt_text[:k],
            trainer.tokenizer,
            f"this run after {args.warmup + args.steps} steps",
        )
    from nmt.checkpoint import load_checkpoint
    from nmt.config import to_dataclass
    from nmt.data import Tokenizer, encode_sources
    from nmt.decoding import decode_corpus
    from nmt.models import build_model, source_limit
    from nmt.runtime import autocast

    path = Path(ckpts[name])
    path = path / "checkpoints" / "best.pt" if path.is_dir() else path
    ckpt = load_checkpoint(path, map_location=trainer.device)
    cfg = to_dataclass(ckpt["config"])
    tok = Tokenizer.from_dict(ckpt["tokenizer"])
    model = build_model(cfg.model, cfg.attention, tok.src_vocab_size, tok.tgt_vocab_size)
    model.load_state_dict(ckpt["model"])
    model.to(trainer.device).eval()
    sources = list(encode_sources(tok, test.src_text[:k], cfg.data.lowercase))
    d = cfg.decode

    def translate(src, beam):
        with autocast(trainer.device, args.precision):
            return decode_corpus(
                model,
                src,
                beam,
                d.length_penalty,
                d.max_len_a,
                d.max_len_b,
                args.decode_batch,
                trainer.device,
                False,
                source_limit(cfg),
            )

    return translate, sources, test.tgt_text[:k], tok, str(path)


def run_decode(args: argparse.Namespace, trainer: Any, cfg: Any, name: str) -> dict[str, Any]:
    from nmt.metrics import corpus_scores

    translate, sources, refs, tok, origin = _decode_model(args, trainer, name)
    out: dict[str, Any] = {"decode_sents": len(sources), "decode_model": origin}
    if not sources:
        return out
    translate(sources[: min(8, len(sources))], 1)  # one-time initialisation, not timed
    for label, beam in (("greedy", 1), ("beam5", 5)):
        sync(trainer.device)
        tick = time.perf_counter()
        hyps = translate(sources, beam)
        sync(trainer.device)
        seconds = time.perf_counter() - tick
        out[f"{label}_s"] = round(seconds, 3)
        out[f"{label}_sents_per_s"] = round(len(sources) / seconds, 2)
        out[f"{label}_hyp_len_mean"] = round(sum(len(h.tokens) for h in hyps) / len(hyps), 2)
        text = tok.decode_tgt([h.tokens for h in hyps])
        out[f"{label}_bleu"] = round(corpus_scores(text, refs)["bleu"], 2)
    out["src_len_mean"] = round(sum(len(s) for s in sources) / len(sources), 2)
    return out


# --- preprocessing (child process) -------------------------------------------------------------
def run_one_preprocess(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from nmt.data import prepare_data

    corpus = Path(args.corpus)
    cfg = compose(
        [
            *COMMON,
            *TRANSFORMER,
            "data.source=local",
            f"data.root={corpus}",
            f"data.spm_train_lines={args.spm_train_lines}",
        ]
    )
    out_dir = Path(args.work) / f"pre-{os.getpid()}"
    baseline = rss_mb("VmRSS")
    tick = time.perf_counter()
    bundle = prepare_data(cfg.data, out_dir, None, args.seed, quiet_logger())
    seconds = time.perf_counter() - tick
    peak = rss_mb()
    stats = dict(bundle.stats)
    stats.pop("train_dir", None)
    n = stats["n_read"]
    disk = sum(p.stat().st_size for p in Path(bundle.stats["train_dir"]).glob("*.npy"))
    result = {
        "lines": n,
        "seconds": round(seconds, 2),
        "lines_per_s": round(n / seconds, 1),
        "encode_lines_per_s": round(n / max(stats.get("encode_s", 0.0), 1e-9), 1),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_minus_baseline_mb": round(peak - baseline, 1),
        "spm_train_lines": cfg.data.spm_train_lines,
        "ids_on_disk_mb": round(disk / 2**20, 1),
        "stats": stats,
    }
    shutil.rmtree(out_dir, ignore_errors=True)
    return result


# --- the parent ----------------------------------------------------------------------------------
def child(args: argparse.Namespace, extra: list[str], log_path: Path) -> dict[str, Any] | None:
    """Run this script with `extra` in a fresh interpreter; its JSON result or None on failure."""
    result = Path(tempfile.mkstemp(suffix=".json", dir=args.work)[1])
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        *forwarded(args),
        *extra,
        "--result",
        str(result),
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        if proc.returncode == 0:
            return json.loads(result.read_text())
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        print(f"bench: child failed (exit {proc.returncode}); log {log_path}:", file=sys.stderr)
        print("\n".join("    " + line for line in tail), file=sys.stderr)
        return None
    finally:
        result.unlink(missing_ok=True)


def forwarded(args: argparse.Namespace) -> list[str]:
    out = [
        "--steps", str(args.steps),
        "--warmup", str(args.warmup),
        "--precision", args.precision,
        "--threads", str(args.threads),
        "--device", args.device,
        "--seed", str(args.seed),
        "--work", str(args.work),
        "--decode-batch", str(args.decode_batch),
        "--spm-train-lines", str(args.spm_train_lines),
    ]  # fmt: skip
    if args.decode_sents is not None:
        out += ["--decode-sents", str(args.decode_sents)]
    if args.data_root:
        out += ["--data-root", args.data_root]
    for item in args.set:
        out += ["--set", item]
    for item in args.decode_ckpt:
        out += ["--decode-ckpt", item]
    return out


def meta(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from nmt.runtime import cpu_capability, cpu_flags

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "precision": args.precision,
        "device": args.device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": list(cpu_flags()),
        "cpu_capability": cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host": platform.node(),
        "git": git_state(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "steps": args.steps,
        "warmup": args.warmup,
        "decode_sents": args.decode_sents,
        "overrides": args.set,
        "tokens": "non-padding tokens, EOS included (source + EOS; target + EOS)",
    }


def prepare_shared_data(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Train the tokenizer and encode the training split once; every workload reuses them."""
    from nmt.data import prepare_data

    cfg = compose(workload_overrides(names[0], args))
    tick = time.perf_counter()
    bundle = prepare_data(cfg.data, Path(args.work) / "run", None, cfg.seed, quiet_logger())
    return {
        "corpus": cfg.data.root,
        "train_pairs": len(bundle.train),
        "test_sentences": len(bundle.test),
        "vocab": bundle.tokenizer.tgt_vocab_size,
        "prepare_s": round(time.perf_counter() - tick, 2),
    }


def write_repeated(
    base: Path, out: Path, repeats: int, src: str, tgt: str, limit: int | None
) -> None:
    """train.{src,tgt} = the base training split (first `limit` lines) repeated; val/test linked."""
    from nmt.data.corpus import find_split_file, read_lines

    out.mkdir(parents=True, exist_ok=True)
    for lang in (src, tgt):
        path = find_split_file(base, "train", lang)
        if path is None:
            raise SystemExit(
                f"bench: no train.{lang}[.gz] in {base}; set NMT_DATA_ROOT or --data-root"
            )
        text = "".join(line + "\n" for line in read_lines(path, limit)).encode("utf-8")
        with open(out / f"train.{lang}", "wb") as f:
            for _ in range(repeats):
                f.write(text)
    for item in base.iterdir():
        if not item.name.startswith("train."):
            (out / item.name).symlink_to(item.resolve())


def run_preprocess(args: argparse.Namespace) -> dict[str, Any]:
    cfg = compose(
        [*COMMON, *TRANSFORMER] + ([f"data.root={args.data_root}"] if args.data_root else [])
    )
    base = Path(cfg.data.root)
    sizes = []
    for repeats in [int(r) for r in args.preprocess_repeats.split(",")]:
        corpus = Path(tempfile.mkdtemp(prefix=f"corpus-x{repeats}-", dir=args.work))
        try:
            print(f"bench: preprocessing {repeats}x {base.name} ...", flush=True)
            write_repeated(
                base,
                corpus,
                repeats,
                cfg.data.src_lang,
                cfg.data.tgt_lang,
                args.preprocess_base_lines,
            )
            res = child(
                args,
                ["--one-preprocess", str(repeats), "--corpus", str(corpus)],
                Path(args.work) / "preprocess.log",
            )
        finally:
            shutil.rmtree(corpus, ignore_errors=True)
        if res is not None:
            res["repeats"] = repeats
            sizes.append(res)
    out: dict[str, Any] = {
        "corpus": str(base),
        "format": "plain text, train split repeated; val/test as given",
        "spm_train_lines": args.spm_train_lines,
        "sizes": sizes,
    }
    if len(sizes) >= 2:
        out["peak_rss_ratio_largest_to_smallest"] = round(
            sizes[-1]["peak_rss_mb"] / sizes[0]["peak_rss_mb"], 3
        )
    return out


def print_table(report: dict[str, Any], names: list[str]) -> None:
    rows = [r for r in (report.get(n) for n in names) if r]
    if rows:
        head = f"{'workload':<22}{'params':>10}{'src tok/s':>11}{'tgt tok/s':>11}{'greedy s/s':>12}{'beam5 s/s':>11}{'RSS MB':>9}{'GFLOP/tok':>11}{'MFU':>8}"
        print("\n" + head + "\n" + "-" * len(head))
        for r in rows:
            mfu = r.get("mfu")
            print(
                f"{r['workload']:<22}{r['params']:>10,}{r['train_src_tokens_per_s']:>11,.0f}"
                f"{r['train_tgt_tokens_per_s']:>11,.0f}{r.get('greedy_sents_per_s', float('nan')):>12.1f}"
                f"{r.get('beam5_sents_per_s', float('nan')):>11.1f}{r['peak_rss_mb']:>9.0f}"
                f"{r['flops_per_tgt_token'] / 1e9:>11.4f}{(mfu if mfu is not None else float('nan')):>8.2%}"
            )
        m = report["meta"]
        print(
            f"({m['precision']}, {m['threads']} threads, {m['cpu']}, torch {m['torch']}; "
            f"{m['steps']} timed steps after {m['warmup']}; decode on {rows[0].get('decode_sents')} "
            f"test2016 sentences from {rows[0].get('decode_model')}; matmul peak "
            + ", ".join(
                f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in m.get("matmul_peak_flops", {}).items()
            )
            + ")"
        )
    pre = report.get("preprocess")
    if pre and pre.get("sizes"):
        head = f"{'lines':>12}{'lines/s':>12}{'encode l/s':>12}{'peak RSS MB':>13}{'baseline MB':>13}{'ids MB':>9}"
        print(
            "\npreprocessing (streaming prepare_data, SentencePiece sample "
            f"{pre['spm_train_lines']:,} lines per side)\n" + head + "\n" + "-" * len(head)
        )
        for s in pre["sizes"]:
            print(
                f"{s['lines']:>12,}{s['lines_per_s']:>12,.0f}{s['encode_lines_per_s']:>12,.0f}"
                f"{s['peak_rss_mb']:>13.0f}{s['baseline_rss_mb']:>13.0f}{s['ids_on_disk_mb']:>9.1f}"
            )
        if "peak_rss_ratio_largest_to_smallest" in pre:
            print(f"peak RSS, largest / smallest: {pre['peak_rss_ratio_largest_to_smallest']:.2f}x")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help="comma-separated: rnn_<mechanism>, transformer",
    )
    p.add_argument("--steps", type=int, default=30, help="timed training steps per workload")
    p.add_argument("--warmup", type=int, default=5, help="untimed training steps first")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="auto",
        help="auto: bf16 where the CPU has AVX512-BF16/AMX (or on a CUDA GPU), else fp32",
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--decode-sents", type=int, default=None, help="decode only the first K test2016 sentences"
    )
    p.add_argument("--decode-batch", type=int, default=64, help="sentences per decoding batch")
    p.add_argument(
        "--decode-ckpt",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="decode this trained run/checkpoint for workload NAME",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override; prefix rnn: or transformer: for one family",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="corpus folder (default: data.root of conf/data/multi30k.yaml)",
    )
    p.add_argument("--peak-size", type=int, default=2048, help="matrix size for the matmul peak")
    p.add_argument("--out", default="bench.json")
    p.add_argument(
        "--work",
        default=None,
        help="scratch folder (default: a new temporary folder, deleted at the end)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--preprocess", action="store_true", help="only the preprocessing benchmark")
    mode.add_argument(
        "--no-preprocess", action="store_true", help="skip the preprocessing benchmark"
    )
    p.add_argument(
        "--preprocess-repeats", default="1,10,100", help="corpus sizes as repeats of Multi30k train"
    )
    p.add_argument(
        "--preprocess-base-lines",
        type=int,
        default=None,
        help="repeat only the first K training lines",
    )
    p.add_argument(
        "--spm-train-lines",
        type=int,
        default=100_000,
        help="preprocessing: SentencePiece sample per side",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--one-preprocess", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.one or args.one_preprocess:  # a child: one measurement, result to --result
        result = run_one(args) if args.one else run_one_preprocess(args)
        Path(args.result).write_text(json.dumps(result, indent=1) + "\n")
        return 0

    names = [] if args.preprocess else [n.strip() for n in args.workloads.split(",") if n.strip()]
    if args.precision == "auto":
        args.precision = auto_precision(args.device)
    for name in names:
        workload_overrides(name, args)  # unknown names fail now
    own_work = args.work is None
    args.work = str(Path(args.work or tempfile.mkdtemp(prefix="nmt-bench-")).resolve())
    Path(args.work).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"meta": meta(args), "workloads": names}
    out_path = Path(args.out).resolve()
    try:
        if names:
            print(f"bench: preparing data (tokenizer, encoding) in {args.work} ...", flush=True)
            report["meta"]["data"] = prepare_shared_data(args, names)
            device = (
                "cuda" if args.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
            )
            # bf16's peak only where it is measured: emulated bf16 (no AVX512-BF16/AMX) takes
            # minutes for a few 2048^2 matmuls and is not what any workload runs at
            wanted = ("fp32", "bf16") if args.precision == "bf16" else ("fp32",)
            peaks = {p: matmul_peak(p, args.peak_size, device) for p in wanted}
            report["meta"]["matmul_peak_flops"] = {k: round(v) for k, v in peaks.items()}
            report["meta"]["matmul_peak_size"] = args.peak_size
            for name in names:
                print(
                    f"bench: {name}: {args.warmup} + {args.steps} training steps, then decoding ...",
                    flush=True,
                )
                res = child(args, ["--one", name], Path(args.work) / f"{name}.log")
                if res is None:
                    report[name] = {
                        "workload": name,
                        "error": f"failed; see {args.work}/{name}.log",
                    }
                    continue
                peak = peaks[res["precision"]]
                res["matmul_peak_flops"] = round(peak)
                res["mfu"] = round(
                    res["flops_per_tgt_token"] * res["train_tgt_tokens_per_s"] / peak, 5
                )
                report[name] = res
                out_path.write_text(json.dumps(report, indent=1) + "\n")  # partial results survive
        if not args.no_preprocess and (args.preprocess or names):
            report["preprocess"] = run_preprocess(args)
        out_path.write_text(json.dumps(report, indent=1) + "\n")
    finally:
        failed = [n for n in names if "error" in report.get(n, {"error": 1})]
        if own_work and not failed:
            shutil.rmtree(args.work, ignore_errors=True)
    print_table(report, [n for n in names if n not in failed])
    if failed:
        print(
            f"bench: failed workloads: {', '.join(failed)} (logs in {args.work})", file=sys.stderr
        )
    print(f"\nbench: results written to {out_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
