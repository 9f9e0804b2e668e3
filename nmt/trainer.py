"""Training loop: step, validate, checkpoint, resume, and the final test decode.

A run folder holds `spm*.model`, `checkpoints/{best,last,step_N}.pt`, `tb/`, `train.log`,
`progress.jsonl` (per-step loss), `valid.jsonl`, `test.hyp` and `metrics.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nmt.checkpoint import load_checkpoint, save_checkpoint
from nmt.config import Config, RNNConfig, to_dataclass
from nmt.data import DataBundle, prepare_data
from nmt.data.batching import Batch, TokenBatchSampler, collate, shard_batches
from nmt.data.tokenizer import PAD, Tokenizer
from nmt.decoding import decode_corpus
from nmt.loss import linear_cross_entropy
from nmt.metrics import bleu_by_length, corpus_scores
from nmt.models import build_model, count_parameters, reduce_attention, source_limit
from nmt.runtime import (
    autocast,
    pick_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
)

log = logging.getLogger("nmt")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. repeated non-finite losses); the message says what to try."""


# --- small helpers ---------------------------------------------------------------------------
def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain-data config for checkpoints (weights_only-safe)."""
    return dataclasses.asdict(cfg)


def setup_logging(run_dir: Path, main_process: bool = True) -> None:
    """Log to `run_dir/train.log` and stderr (rank 0 only)."""
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    if not main_process:
        log.addHandler(logging.NullHandler())
        return
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(fmt)
    sh = logging.StreamHandler()
    sh.setFormatter(fmt)
    log.addHandler(fh)
    log.addHandler(sh)


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    t = cfg.trainer
    kind = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: Config):
    """Reduce-on-plateau (stepped on dev BLEU), inverse square root with warm-up, or constant."""
    t = cfg.trainer
    if t.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr
        )
    if t.schedule == "inverse_sqrt":
        from nmt.models.transformer import inverse_sqrt_lr

        # Vaswani 2017, eq. 3 (scaled to peak lr): linear warm-up then 1/sqrt(step)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: inverse_sqrt_lr(s + 1, t.warmup_steps)
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


# --- the trainer -----------------------------------------------------------------------------
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


class Trainer:
    """Builds data, model and optimizer from a Config and trains in `run_dir`."""

    def __init__(self, cfg: Config, run_dir: Path, rank: int = 0, world_size: int = 1):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world_size = rank, world_size
        self.main = rank == 0
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(self.run_dir, self.main)
        t = cfg.trainer
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = pick_device(t.device)
        if world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        self.precision = resolve_precision(t.precision, self.device, "trainer.precision")
        seed_everything(cfg.seed)

        resume_ckpt = self._find_resume()
        tokenizer = Tokenizer.from_dict(resume_ckpt["tokenizer"]) if resume_ckpt else None
        if world_size > 1 and not self.main:
            # rank 0 trains the tokenizer and encodes the corpus first; the others wait here, take
            # its tokenizer and reuse the encoded split (same folder) or encode their own copy
            shared = [None]
            torch.distributed.broadcast_object_list(shared, src=0, device=self._comm_device())
            tokenizer = Tokenizer.from_dict(shared[0])
        self.data: DataBundle = prepare_data(cfg.data, self.run_dir, tokenizer, cfg.seed, log)
        if world_size > 1 and self.main:
            shared = [self.data.tokenizer.to_dict()]
            torch.distributed.broadcast_object_list(shared, src=0, device=self._comm_device())
        self.tokenizer = self.data.tokenizer
        self.model = build_model(
            cfg.model, cfg.attention, self.tokenizer.src_vocab_size, self.tokenizer.tgt_vocab_size
        ).to(self.device)
        self.params = count_parameters(self.model)
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.progress = Progress()
        train = self.data.train
        self.sampler = TokenBatchSampler(
            train.src.lengths, train.tgt.lengths, t.max_tokens, shuffle=True, seed=cfg.seed
        )
        if resume_ckpt:
            self._restore(resume_ckpt)
        self.ddp_model = self.model
        if world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # the only buffers are constant (the sinusoid table): no broadcast in every forward,
            # which would also be a collective inside rank 0's validation
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, broadcast_buffers=False
            )
        self.writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        self._stop_signal: int | None = None
        log.info(
            "model %s%s: %s parameters; device %s; %d threads; precision %s",
            getattr(cfg.model, "arch", "?"),
            f" / attention {cfg.attention.type}" if isinstance(cfg.model, RNNConfig) else "",
            f"{self.params:,}",
            self.device,
            torch.get_num_threads(),
            self.precision.name,
        )

    # --- resume ------------------------------------------------------------------------------
    def _find_resume(self) -> dict | None:
        last = self.ckpt_dir / "last.pt"
        if self.cfg.resume:
            path = Path(self.cfg.resume)
            path = path / "checkpoints" / "last.pt" if path.is_dir() else path
            return load_checkpoint(path)
        return load_checkpoint(last) if last.is_file() else None

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.progress = Progress(**ckpt["progress"])
        set_rng_state(ckpt["rng"])
        log.info(
            "resumed from step %d (epoch %d, batch %d)",
            self.progress.step,
            self.progress.epoch,
            self.progress.batch_in_epoch,
        )

    # --- checkpoints -------------------------------------------------------------------------
    def save(self, is_best: bool = False) -> None:
        """Write last.pt atomically; link step_N.pt (keep the last K) and best.pt to it."""
        if not self.main:
            return
        payload = {
            "config": config_to_dict(self.cfg),
            "tokenizer": self.tokenizer.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "rng": rng_state(),
        }
        last = self.ckpt_dir / "last.pt"
        save_checkpoint(last, payload)
        links = (
            [self.ckpt_dir / f"step_{self.progress.step}.pt"] if self.cfg.trainer.keep_last else []
        )
        if is_best:
            links.append(self.ckpt_dir / "best.pt")
        for target in links:
            tmp = target.with_suffix(".pt.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                os.link(last, tmp)
            except OSError:
                import shutil

                shutil.copyfile(last, tmp)
            os.replace(tmp, target)
        numbered = sorted(self.ckpt_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in numbered[: max(0, len(numbered) - self.cfg.trainer.keep_last)]:
            old.unlink()

    # --- one step ----------------------------------------------------------------------------
    def _comm_device(self) -> torch.device:
        """Where collectives put their tensors: the GPU for NCCL, else the CPU."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def loss_on(
        self, batch: Batch, label_smoothing: float, model: nn.Module | None = None
    ) -> torch.Tensor:
        """Summed token cross-entropy of a batch (float32); `model` defaults to the DDP wrapper.

        The output projection and the loss run on the real target positions only, fused and in
        row chunks (`nmt.loss`), so no (B, T, V) logits tensor is built.
        """
        with autocast(self.device, self.precision):
            hidden, _ = (model or self.ddp_model)(
                batch.src, batch.src_lens, batch.tgt_in, project=False
            )  # (B, T, H)
        real = batch.tgt_out != PAD  # (B, T)
        output = self.model.output_layer
        return linear_cross_entropy(
            hidden[real],  # (N, H)
            output.weight,
            output.bias,
            batch.tgt_out[real],  # (N,)
            label_smoothing,
            dtype=self.precision.dtype if self.precision.name == "bf16" else hidden.dtype,
        )

    def train_step(self, batch: Batch) -> float | None:
        """One update; returns the per-token loss, or None when the update was skipped."""
        t = self.cfg.trainer
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = max(1, batch.n_tgt_tokens)
        if self.world_size > 1:
            # Normalise by the global batch's tokens: DDP averages the ranks' gradients, so
            # world_size / global_tokens makes that average the gradient of the global token mean.
            n = torch.tensor([float(tokens)], device=self._comm_device())
            torch.distributed.all_reduce(n)
            scale = self.world_size / n.item()
        else:
            scale = 1.0 / tokens
        loss_sum = self.loss_on(batch, t.label_smoothing)
        (loss_sum * scale).backward()
        loss = loss_sum.detach() / tokens  # this rank's per-token loss, for logging
        norm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
            if t.clip_grad_norm > 0
            else torch.stack(
                [p.grad.norm() for p in self.model.parameters() if p.grad is not None]
            ).norm()
        )
        value = loss.item()
        if not (math.isfinite(value) and bool(torch.isfinite(norm))):
            self.optimizer.zero_grad(set_to_none=True)
            self.progress.nonfinite_in_a_row += 1
            log.warning(
                "step %d: non-finite %s, update skipped (%d in a row, limit trainer.nan_tolerance=%d)",
                self.progress.step + 1,
                "loss" if not math.isfinite(value) else "gradient",
                self.progress.nonfinite_in_a_row,
                t.nan_tolerance,
            )
            if self.progress.nonfinite_in_a_row >= t.nan_tolerance:
                last = self.ckpt_dir / "last.pt"
                raise TrainingError(
                    f"{self.progress.nonfinite_in_a_row} non-finite updates in a row at step "
                    f"{self.progress.step + 1}: try a lower trainer.lr (now {t.lr}), "
                    f"trainer.clip_grad_norm (now {t.clip_grad_norm}) or trainer.precision=fp32; "
                    + (
                        f"the last good checkpoint is {last}"
                        if last.is_file()
                        else "no checkpoint was saved yet"
                    )
                )
            return None
        self.progress.nonfinite_in_a_row = 0
        self.optimizer.step()
        if t.schedule != "plateau":
            self.scheduler.step()
        return value

    # --- validation --------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Dev loss, perplexity and BLEU (greedy or `decode.valid_beam`)."""
        self.model.eval()
        valid = self.data.valid
        sampler = TokenBatchSampler(
            valid.src.lengths, valid.tgt.lengths, self.cfg.trainer.max_tokens, shuffle=False, seed=0
        )
        nll, tokens = 0.0, 0
        limit = source_limit(self.cfg)  # dev sentences are not length-filtered like training
        for idx in sampler.batches(0):
            sources = [valid.src[i][:limit] for i in idx]
            batch = collate(sources, [valid.tgt[i] for i in idx], idx).to(self.device)
            nll += float(self.loss_on(batch, 0.0, self.model))  # rank 0 alone: no DDP collectives
            tokens += batch.n_tgt_tokens
        n = len(valid.src_text)
        if self.cfg.trainer.valid_max_sentences:
            n = min(n, self.cfg.trainer.valid_max_sentences)
        hyps = self.translate_ids([valid.src[i] for i in range(n)], self.cfg.decode.valid_beam)
        scores = corpus_scores(
            self.tokenizer.decode_tgt([h.tokens for h in hyps]), valid.tgt_text[:n]
        )
        loss = nll / max(1, tokens)
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 50.0)),
            "bleu": scores["bleu"],
            "chrf": scores["chrf"],
        }

    def translate_ids(self, sources: list, beam: int, need_attention: bool = False):
        d = self.cfg.decode
        self.model.eval()
        with autocast(self.device, self.precision):
            return decode_corpus(
                self.model,
                sources,
                beam,
                d.length_penalty,
                d.max_len_a,
                d.max_len_b,
                d.batch_size,
                self.device,
                need_attention,
                source_limit(self.cfg),
            )

    def after_validation(self, result: dict[str, float]) -> bool:
        """Log, schedule, checkpoint and early-stop; returns True when training should stop."""
        p, t = self.progress, self.cfg.trainer
        improved = result["bleu"] > p.best_bleu
        if improved:
            p.best_bleu, p.best_step, p.bad_validations = result["bleu"], p.step, 0
        else:
            p.bad_validations += 1
        if t.schedule == "plateau":
            self.scheduler.step(result["bleu"])
        log.info(
            "validation at step %d: loss %.4f ppl %.2f BLEU %.2f chrF %.2f%s",
            p.step,
            result["loss"],
            result["ppl"],
            result["bleu"],
            result["chrf"],
            " (best)" if improved else f" (best {p.best_bleu:.2f} at step {p.best_step})",
        )
        if self.writer:
            for key, value in result.items():
                self.writer.add_scalar(f"valid/{key}", value, p.step)
            self._tensorboard_heatmaps()
            with open(self.run_dir / "valid.jsonl", "a") as f:
                f.write(json.dumps({"step": p.step, "train_time": p.train_time, **result}) + "\n")
        self.save(is_best=improved)
        if t.patience is not None and p.bad_validations >= t.patience:
            log.info("early stopping: no dev BLEU improvement in %d validations", t.patience)
            return True
        return False

    def _tensorboard_heatmaps(self) -> None:
        n = min(self.cfg.trainer.num_heatmaps, len(self.data.valid.src_text))
        if n == 0:
            return
        from nmt.plotting import plot_heatmap

        hyps = self.translate_ids(
            [self.data.valid.src[i] for i in range(n)], 1, need_attention=True
        )
        for i, h in enumerate(hyps):
            if h.attention is None or len(h.tokens) == 0:
                continue
            src = self.tokenizer.src_pieces_from_ids(list(self.data.valid.src[i])) + ["</s>"]
            tgt = self.tokenizer.tgt_pieces_from_ids(h.tokens)
            fig = plot_heatmap(reduce_attention(h.attention).numpy(), src, tgt, None, f"dev {i}")
            self.writer.add_figure(f"attention/dev_{i}", fig, self.progress.step)

    # --- the loop ----------------------------------------------------------------------------
    def _handle_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum
        log.warning("received %s: saving a checkpoint and stopping", signal.Signals(signum).name)

    def _out_of_budget(self) -> str | None:
        t, p = self.cfg.trainer, self.progress
        if self.world_size > 1 and t.max_time is not None:
            # every rank times its own steps; rank 0's clock decides so that all stop together
            clock = torch.tensor([p.train_time], dtype=torch.float64, device=self._comm_device())
            torch.distributed.broadcast(clock, src=0)
            p.train_time = float(clock.item())
        if t.max_steps is not None and p.step >= t.max_steps:
            return f"trainer.max_steps={t.max_steps}"
        if t.max_time is not None and p.train_time >= t.max_time:
            return f"trainer.max_time={t.max_time}s"
        if t.max_epochs is not None and p.epoch >= t.max_epochs:
            return f"trainer.max_epochs={t.max_epochs}"
        return None

    def fit(self) -> dict[str, Any]:
        """Train until a stop condition, then decode the test set; returns metrics."""
        t, p = self.cfg.trainer, self.progress
        from tqdm import tqdm

        handlers = {}
        if self.main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._handle_signal)
        start_wall = time.time()
        bar = tqdm(
            total=t.max_steps, initial=p.step, disable=None if self.main else True, unit="step"
        )
        stop_reason, last_validated = None, p.step
        progress_log = open(self.run_dir / "progress.jsonl", "a") if self.main else None
        try:
            while stop_reason is None:
                stop_reason = self._out_of_budget()
                if stop_reason:
                    break
                batches = self.sampler.batches(p.epoch)
                if self.world_size > 1:  # the same number of batches on every rank, or DDP hangs
                    batches = shard_batches(batches, self.rank, self.world_size)
                while p.batch_in_epoch < len(batches):
                    idx = batches[p.batch_in_epoch]
                    train = self.data.train
                    batch = collate([train.src[i] for i in idx], [train.tgt[i] for i in idx], idx)
                    batch = batch.to(self.device)
                    tick = time.perf_counter()
                    loss = self.train_step(batch)
                    p.train_time += time.perf_counter() - tick
                    p.step += 1
                    p.batch_in_epoch += 1
                    p.src_tokens += batch.n_src_tokens * self.world_size
                    p.tgt_tokens += batch.n_tgt_tokens * self.world_size
                    tok_s = p.tgt_tokens / max(p.train_time, 1e-9)
                    bar.update(1)
                    if loss is not None and p.step % t.log_every == 0 and self.main:
                        lr = self.optimizer.param_groups[0]["lr"]
                        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:.0f}")
                        progress_log.write(
                            json.dumps({"step": p.step, "epoch": p.epoch, "loss": loss, "lr": lr})
                            + "\n"
                        )
                        progress_log.flush()
                        self.writer.add_scalar("train/loss", loss, p.step)
                        self.writer.add_scalar("train/lr", lr, p.step)
                        self.writer.add_scalar("train/tgt_tokens_per_s", tok_s, p.step)
                    if p.step % t.validate_every == 0:  # before the signal check: a resumed
                        last_validated = p.step  # run must not skip this validation
                        if self._validate_and_sync():
                            stop_reason = "early stopping"
                            break
                    if self._stop_signal is not None:
                        stop_reason = f"signal {signal.Signals(self._stop_signal).name}"
                        break
                    stop_reason = self._out_of_budget()
                    if stop_reason:
                        break
                else:
                    p.epoch += 1
                    p.batch_in_epoch = 0
        finally:
            bar.close()
            if progress_log:
                progress_log.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        log.info("training stopped at step %d (epoch %d): %s", p.step, p.epoch, stop_reason)
        interrupted = stop_reason.startswith("signal")
        if interrupted:
            self.save(is_best=False)
        elif p.step != last_validated or not (self.ckpt_dir / "best.pt").exists():
            self._validate_and_sync()
        metrics = {
            "model": getattr(self.cfg.model, "arch", "?"),
            "attention": self.cfg.attention.type if isinstance(self.cfg.model, RNNConfig) else None,
            "params": self.params,
            "steps": p.step,
            "epochs": round(
                p.epoch
                + p.batch_in_epoch / max(1, (self.sampler.num_batches(p.epoch) // self.world_size)),
                3,
            ),
            "dev_bleu": p.best_bleu,
            "best_step": p.best_step,
            "train_time_s": round(p.train_time, 1),
            "train_src_tokens_per_s": round(p.src_tokens / max(p.train_time, 1e-9), 1),
            "train_tgt_tokens_per_s": round(p.tgt_tokens / max(p.train_time, 1e-9), 1),
            "stop_reason": stop_reason,
            "interrupted": interrupted,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            **self.precision.record(),
        }
        if self.main and not interrupted and t.test_at_end:
            metrics.update(self.test())
        metrics["wall_s"] = round(time.time() - start_wall, 1)
        if self.main:
            if t.average_last > 1:
                self._average(t.average_last)
            (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            log.info("metrics: %s", json.dumps(metrics))
        if self.writer:
            self.writer.close()
        return metrics

    def _validate_and_sync(self) -> bool:
        """Validate on rank 0; every rank learns whether to stop."""
        stop = self.after_validation(self.validate()) if self.main else False
        if self.world_size > 1:
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def _average(self, n: int) -> None:
        from nmt.average import average_checkpoints

        numbered = sorted(self.ckpt_dir.glob("step_*.pt"), key=lambda q: int(q.stem.split("_")[1]))[
            -n:
        ]
        if len(numbered) >= 2:
            save_checkpoint(self.ckpt_dir / "averaged.pt", average_checkpoints(numbered))
            log.info(
                "averaged %d checkpoints into %s", len(numbered), self.ckpt_dir / "averaged.pt"
            )

    # --- test --------------------------------------------------------------------------------
    def test(self) -> dict[str, Any]:
        """Decode the test split with the best checkpoint and beam search; write test.hyp."""
        best = load_checkpoint(self.ckpt_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(best["model"])
        test, d = self.data.test, self.cfg.decode
        tick = time.perf_counter()
        hyps = self.translate_ids(
            [test.src[i] for i in range(len(test.src_text))], d.beam, need_attention=True
        )
        decode_s = time.perf_counter() - tick
        text = self.tokenizer.decode_tgt([h.tokens for h in hyps])
        (self.run_dir / "test.hyp").write_text(
            "".join(line + "\n" for line in text), encoding="utf-8"
        )
        scores = corpus_scores(text, test.tgt_text)
        self._save_test_heatmaps(hyps)
        log.info(
            "test: BLEU %.2f chrF %.2f (%s)",
            scores["bleu"],
            scores["chrf"],
            scores["bleu_signature"],
        )
        result = {
            "test_bleu": scores["bleu"],
            "test_chrf": scores["chrf"],
            "sacrebleu_signature": scores["bleu_signature"],
            "chrf_signature": scores["chrf_signature"],
            "test_beam": d.beam,
            "test_decode_sents_per_s": round(len(hyps) / max(decode_s, 1e-9), 2),
            "bleu_by_length": bleu_by_length(text, test.tgt_text, test.src_text),
        }
        from nmt.analysis import analyse_test_run

        stats = analyse_test_run(
            self.run_dir,
            hyps,
            self.tokenizer,
            test,
            bleu_by_length=result["bleu_by_length"],
            label=self.label,
        )
        result.update(stats)
        return result

    @property
    def label(self) -> str:
        """'rnn bahdanau', 'transformer', ...: for titles and logs."""
        if isinstance(self.cfg.model, RNNConfig):
            return f"rnn {self.cfg.attention.type}"
        return getattr(self.cfg.model, "arch", "model")

    def _save_test_heatmaps(self, hyps) -> None:
        from nmt.plotting import plot_heatmap

        out = self.run_dir / "heatmaps"
        for i, h in enumerate(hyps[: self.cfg.trainer.num_heatmaps]):
            if h.attention is None or not h.tokens:
                continue
            src = self.tokenizer.src_pieces_from_ids(list(self.data.test.src[i])) + ["</s>"]
            tgt = self.tokenizer.tgt_pieces_from_ids(h.tokens)
            plot_heatmap(
                reduce_attention(h.attention).numpy(),
                src,
                tgt,
                out / f"test_{i}.png",
                f"{self.label} test {i}",
            )


def run(cfg_dict: dict | Any, run_dir: Path) -> dict[str, Any]:
    """Validate a composed config and train in `run_dir` (DDP when launched by torchrun)."""
    cfg = to_dataclass(cfg_dict)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1:
        import datetime

        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() and cfg.trainer.device != "cpu" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # the other ranks wait while rank 0 prepares the data (tokenizer, encoding): allow hours
        timeout = datetime.timedelta(seconds=float(os.environ.get("NMT_DIST_TIMEOUT", 4 * 3600)))
        dist.init_process_group(backend, timeout=timeout)
        # Hydra names the run folder by each process's start time: every rank uses rank 0's
        shared = [str(run_dir)]
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
        dist.broadcast_object_list(shared, src=0, device=device)
        run_dir = Path(shared[0])
    try:
        return Trainer(cfg, run_dir, rank, world_size).fit()
    finally:
        if world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
