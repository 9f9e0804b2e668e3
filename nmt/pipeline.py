"""A whole training run: train (`nmt.trainer`), then, on rank 0, what follows training: decode
the test split with best.pt, draw its heatmaps, analyse its attention, average checkpoints and
write metrics.json. `nmt-train`, `make demo`, the benchmark and the tests call `run`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nmt.average import average_checkpoints
from nmt.checkpoint import load_checkpoint, save_checkpoint
from nmt.config import to_dataclass
from nmt.distributed import process_group, world
from nmt.files import atomic_write_text
from nmt.metrics import bleu_by_length, corpus_scores
from nmt.models import model_label, reduce_attention
from nmt.trainer import Trainer, log


def run(cfg_dict: dict | Any, run_dir: Path) -> dict[str, Any]:
    """Validate a composed config, train in `run_dir` (DDP when launched by torchrun) and
    finish the run; returns the metrics written to metrics.json."""
    cfg = to_dataclass(cfg_dict)
    rank, world_size = world()
    with process_group(cfg.trainer.device, Path(run_dir)) as shared_dir:
        trainer = Trainer(cfg, shared_dir, rank, world_size)
        start = time.time()
        metrics = trainer.fit()
        return finish(trainer, metrics, start)


def finish(trainer: Trainer, metrics: dict[str, Any], start: float) -> dict[str, Any]:
    """Test decode, averaging and metrics.json after `fit` (rank 0 only)."""
    t = trainer.cfg.trainer
    if trainer.main and not metrics["interrupted"] and t.test_at_end:
        metrics.update(test(trainer))
    metrics["wall_s"] = round(time.time() - start, 1)
    if trainer.main:
        if t.average_last > 1:
            average_last(trainer.ckpt_dir, t.average_last)
        atomic_write_text(trainer.run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        log.info("metrics: %s", json.dumps(metrics))
    trainer.close()
    return metrics


def average_last(ckpt_dir: Path, n: int) -> None:
    """Average the last `n` numbered checkpoints into averaged.pt (when there are 2 or more)."""
    numbered = sorted(ckpt_dir.glob("step_*.pt"), key=lambda q: int(q.stem.split("_")[1]))[-n:]
    if len(numbered) >= 2:
        save_checkpoint(ckpt_dir / "averaged.pt", average_checkpoints(numbered))
        log.info("averaged %d checkpoints into %s", len(numbered), ckpt_dir / "averaged.pt")


def test(trainer: Trainer) -> dict[str, Any]:
    """Decode the test split with the best checkpoint and beam search; write test.hyp,
    heatmaps/ and the attention analysis; returns the test metrics."""
    best = load_checkpoint(trainer.ckpt_dir / "best.pt", map_location=trainer.device)
    trainer.model.load_state_dict(best["model"])
    data, d = trainer.data.test, trainer.cfg.decode
    tick = time.perf_counter()
    sources = [data.src[i] for i in range(len(data.src_text))]
    hyps = trainer.translate_ids(sources, d.beam, need_attention=True)
    decode_s = time.perf_counter() - tick
    text = trainer.tokenizer.decode_tgt([h.tokens for h in hyps])
    atomic_write_text(trainer.run_dir / "test.hyp", "".join(line + "\n" for line in text))
    scores = corpus_scores(text, data.tgt_text)
    save_heatmaps(trainer, hyps)
    log.info(
        "test: BLEU %.2f chrF %.2f (%s)", scores["bleu"], scores["chrf"], scores["bleu_signature"]
    )
    result = {
        "test_bleu": scores["bleu"],
        "test_chrf": scores["chrf"],
        "sacrebleu_signature": scores["bleu_signature"],
        "chrf_signature": scores["chrf_signature"],
        "test_beam": d.beam,
        "test_decode_sents_per_s": round(len(hyps) / max(decode_s, 1e-9), 2),
        "bleu_by_length": bleu_by_length(text, data.tgt_text, data.src_text),
    }
    from nmt.analysis import analyse_test_run

    label = model_label(trainer.cfg)
    by_length = result["bleu_by_length"]
    result.update(
        analyse_test_run(
            trainer.run_dir, hyps, trainer.tokenizer, data, bleu_by_length=by_length, label=label
        )
    )
    return result


def save_heatmaps(trainer: Trainer, hyps: list) -> None:
    """heatmaps/test_N.png for the first `trainer.num_heatmaps` test sentences."""
    from nmt.viz import plot_heatmap

    out, label = trainer.run_dir / "heatmaps", model_label(trainer.cfg)
    for i, h in enumerate(hyps[: trainer.cfg.trainer.num_heatmaps]):
        if h.attention is None or not h.tokens:
            continue
        src = trainer.tokenizer.src_pieces_with_eos(list(trainer.data.test.src[i]))
        tgt = trainer.tokenizer.tgt_pieces_from_ids(h.tokens)
        weights = reduce_attention(h.attention).numpy()  # (T, S)
        plot_heatmap(weights, src, tgt, out / f"test_{i}.png", f"{label} test {i}")
