"""The training loop: step, validate, checkpoint, resume (the test decode after it: nmt.pipeline).

A run folder holds `spm*.model`, `checkpoints/{best,last,step_N}.pt`, `tb/`, `train.log`,
`progress.jsonl` (per-step loss), `valid.jsonl`, `test.hyp` and `metrics.json`.
"""

from __future__ import annotations

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

from nmt.config import Config, RNNConfig
from nmt.data import DataBundle, prepare_data
from nmt.data.batching import Batch, TokenBatchSampler, collate, shard_batches
from nmt.data.guided import training_links
from nmt.data.tokenizer import Tokenizer
from nmt.distributed import from_rank0, wrap_ddp
from nmt.errors import UserError
from nmt.loss import BatchLoss, Guide, batch_loss
from nmt.models import (
    build_model,
    check_config,
    count_parameters,
    guided_attention_kwargs,
    model_label,
)
from nmt.models.hard_attention import HardAttention
from nmt.optim import budget_used, make_optimizer, make_scheduler
from nmt.runtime import (
    pick_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
    setup_logging,
    teardown_logging,
)
from nmt.snapshots import Progress, find_resume, save_snapshot
from nmt.validation import DevSet

log = logging.getLogger("nmt")


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (e.g. repeated non-finite losses); the message says what to try."""


# --- small helpers ---------------------------------------------------------------------------
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
        check_config(cfg)  # the mechanism table's checks, before any data is read
        seed_everything(cfg.seed)

        resume_ckpt = find_resume(self.ckpt_dir, cfg.resume)
        self.data: DataBundle = self._prepare_data(resume_ckpt)
        self.tokenizer = self.data.tokenizer
        self.model = build_model(
            cfg.model, cfg.attention, self.tokenizer.src_vocab_size, self.tokenizer.tgt_vocab_size
        ).to(self.device)
        self.params = count_parameters(self.model)
        self.hard_attention = [m for m in self.model.modules() if isinstance(m, HardAttention)]
        self.optimizer = make_optimizer(self.model, cfg)
        self.progress = Progress()
        self.scheduler = make_scheduler(
            self.optimizer, cfg, lambda: (self.progress.step, self.progress.train_time)
        )
        train = self.data.train
        self.sampler = TokenBatchSampler(
            train.src.lengths, train.tgt.lengths, t.max_tokens, shuffle=True, seed=cfg.seed
        )
        if resume_ckpt:
            self._restore(resume_ckpt)
        self.ddp_model = wrap_ddp(self.model, self.device) if world_size > 1 else self.model
        self.dev = DevSet(cfg, self.data, self.model, self.device, self.precision)
        self.writer = None
        if self.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        self._stop_signal: int | None = None
        log.info(
            "model %s: %s parameters; device %s; %d threads; precision %s",
            model_label(cfg),
            f"{self.params:,}",
            self.device,
            torch.get_num_threads(),
            self.precision.name,
        )

    def _prepare_data(self, resume_ckpt: dict | None) -> DataBundle:
        """Tokenizer (the checkpoint's on resume) and encoded splits. Under DDP rank 0 trains the
        tokenizer and encodes the corpus first; the others wait, take its tokenizer and reuse
        the encoded split (same folder) or encode their own copy."""
        tokenizer = Tokenizer.from_dict(resume_ckpt["tokenizer"]) if resume_ckpt else None
        if self.world_size > 1 and not self.main:
            tokenizer = Tokenizer.from_dict(from_rank0(None, self._comm_device()))
        data = prepare_data(self.cfg.data, self.run_dir, tokenizer, self.cfg.seed, log)
        self.guide = self._guide(data)  # rank 0 first: the others find its links cached
        if self.world_size > 1 and self.main:
            from_rank0(data.tokenizer.to_dict(), self._comm_device())
        return data

    def _guide(self, data: DataBundle) -> Guide | None:
        """Guided alignment (`trainer.guided_alignment.weight` > 0): eflomal's links of the
        training pairs, cached beside the encoded split (`nmt.data.guided`)."""
        g = self.cfg.trainer.guided_alignment
        if g.weight <= 0:
            return None
        folder = Path(data.stats["train_dir"]).parent
        links = training_links(
            data.train.src, data.train.tgt, data.tokenizer, folder, g.symmetrise, log
        )
        return Guide(links, g.weight, g.layer, g.head, guided_attention_kwargs(self.cfg))

    # --- resume ------------------------------------------------------------------------------
    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.progress = Progress(**ckpt["progress"])  # before the schedule, which reads it
        self.scheduler.load_state_dict(ckpt["scheduler"])
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
            "config": dataclasses.asdict(self.cfg),  # plain data: weights_only-safe
            "tokenizer": self.tokenizer.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "rng": rng_state(),
        }
        t = self.cfg.trainer
        save_snapshot(self.ckpt_dir, payload, self.progress.step, t.keep_last, is_best)

    # --- one step ----------------------------------------------------------------------------
    def _comm_device(self) -> torch.device:
        """Where collectives put their tensors: the GPU for NCCL, else the CPU."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def loss_on(
        self,
        batch: Batch,
        label_smoothing: float,
        model: nn.Module | None = None,
        guide: Guide | None = None,
    ) -> BatchLoss:
        """Summed token cross-entropy of a batch (float32), plus the guided alignment loss with a
        `guide` (and hard attention's REINFORCE terms); `model` defaults to the DDP wrapper."""
        net, output = model or self.ddp_model, self.model.output_layer
        return batch_loss(net, output, batch, label_smoothing, self.device, self.precision, guide)

    def train_step(self, batch: Batch) -> dict[str, float] | None:
        """One update; returns this rank's per-token losses, or None when the update was skipped:
        `loss`, the (label-smoothed) cross-entropy alone, and `guided_loss`, the guided alignment
        loss before its weight, with a guide. The objective minimised adds the weighted guided
        loss and hard attention's REINFORCE terms: logging their sum would make guided and
        unguided runs' curves incomparable."""
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
        used = budget_used(self.progress.step, self.progress.train_time, t)
        for module in self.hard_attention:  # the soft-to-hard curriculum follows the budget
            module.set_progress(used)
        terms = self.loss_on(batch, t.label_smoothing, guide=self.guide)
        (terms.total * scale).backward()
        norm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
            if t.clip_grad_norm > 0
            else torch.stack(
                [p.grad.norm() for p in self.model.parameters() if p.grad is not None]
            ).norm()
        )
        parts = [terms.total, terms.cross_entropy, norm]
        if terms.guided is not None:
            parts.append(terms.guided)
        value, cross_entropy, norm_value, *guided = torch.stack([x.float() for x in parts]).tolist()
        if not (math.isfinite(value) and math.isfinite(norm_value)):
            self._skip_update("loss" if not math.isfinite(value) else "gradient")
            return None
        self.progress.nonfinite_in_a_row = 0
        self.optimizer.step()
        if t.schedule != "plateau":
            self.scheduler.step()
        losses = {"loss": cross_entropy / tokens}
        if guided:
            losses["guided_loss"] = guided[0] / tokens
        return losses

    def _skip_update(self, what: str) -> None:
        """Drop this step's gradients; stop the run after `trainer.nan_tolerance` in a row."""
        t, p = self.cfg.trainer, self.progress
        self.optimizer.zero_grad(set_to_none=True)
        p.nonfinite_in_a_row += 1
        log.warning(
            "step %d: non-finite %s, update skipped (%d in a row, limit trainer.nan_tolerance=%d)",
            p.step + 1,
            what,
            p.nonfinite_in_a_row,
            t.nan_tolerance,
        )
        if p.nonfinite_in_a_row < t.nan_tolerance:
            return
        last = self.ckpt_dir / "last.pt"
        raise TrainingError(
            f"{p.nonfinite_in_a_row} non-finite updates in a row at step {p.step + 1}: try a "
            f"lower trainer.lr (now {t.lr}), trainer.clip_grad_norm (now {t.clip_grad_norm}) or "
            "trainer.precision=fp32; "
            + (
                f"the last good checkpoint is {last}"
                if last.is_file()
                else "no checkpoint was saved yet"
            )
        )

    # --- validation --------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Dev loss, perplexity, BLEU and chrF (greedy or `decode.valid_beam`)."""
        return self.dev.scores(lambda batch: self.loss_on(batch, 0.0, self.model).cross_entropy)

    def translate_ids(self, sources: list, beam: int, need_attention: bool = False):
        """Decode token-id sources with the model as it is now (decode.* settings)."""
        return self.dev.translate_ids(sources, beam, need_attention)

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
            self.dev.heatmaps(self.writer, p.step)
            with open(self.run_dir / "valid.jsonl", "a") as f:
                f.write(json.dumps({"step": p.step, "train_time": p.train_time, **result}) + "\n")
        self.save(is_best=improved)
        if t.patience is not None and p.bad_validations >= t.patience:
            log.info("early stopping: no dev BLEU improvement in %d validations", t.patience)
            return True
        return False

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
        """Train until a stop condition; returns the training metrics (nmt.pipeline adds the
        test decode, analysis and averaging after it)."""
        t, p = self.cfg.trainer, self.progress
        from tqdm import tqdm

        handlers = {}
        if self.main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._handle_signal)
        bar = tqdm(
            total=t.max_steps, initial=p.step, disable=None if self.main else True, unit="step"
        )
        self._last_validated = p.step
        progress_log = open(self.run_dir / "progress.jsonl", "a") if self.main else None
        try:
            stop_reason = self._out_of_budget()
            while stop_reason is None:
                stop_reason = self._train_epoch(bar, progress_log)
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
        elif p.step != self._last_validated or not (self.ckpt_dir / "best.pt").exists():
            self._validate_and_sync()
        return self._train_metrics(stop_reason, interrupted)

    def _train_epoch(self, bar, progress_log) -> str | None:
        """Train on the rest of the current epoch; returns why training stops, or None."""
        t, p = self.cfg.trainer, self.progress
        batches = self.sampler.batches(p.epoch)
        if self.world_size > 1:  # the same number of batches on every rank, or DDP hangs
            batches = shard_batches(batches, self.rank, self.world_size)
        while p.batch_in_epoch < len(batches):
            self._step_on(batches[p.batch_in_epoch], bar, progress_log)
            if p.step % t.validate_every == 0:  # before the signal check: a resumed
                self._last_validated = p.step  # run must not skip this validation
                if self._validate_and_sync():
                    return "early stopping"
            if self._stop_signal is not None:
                return f"signal {signal.Signals(self._stop_signal).name}"
            stop_reason = self._out_of_budget()
            if stop_reason:
                return stop_reason
        p.epoch += 1
        p.batch_in_epoch = 0
        return self._out_of_budget()

    def _step_on(self, idx: list[int], bar, progress_log) -> None:
        """One training step on the batch of training pairs `idx`; count and log it."""
        t, p, train = self.cfg.trainer, self.progress, self.data.train
        batch = collate([train.src[i] for i in idx], [train.tgt[i] for i in idx], idx)
        batch = batch.to(self.device)
        tick = time.perf_counter()
        losses = self.train_step(batch)
        p.train_time += time.perf_counter() - tick
        p.step += 1
        p.batch_in_epoch += 1
        p.src_tokens += batch.n_src_tokens * self.world_size
        p.tgt_tokens += batch.n_tgt_tokens * self.world_size
        bar.update(1)
        if losses is None or p.step % t.log_every != 0 or not self.main:
            return
        tok_s = p.tgt_tokens / max(p.train_time, 1e-9)
        lr = self.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{losses['loss']:.3f}", tok_s=f"{tok_s:.0f}")
        record = {"step": p.step, "epoch": p.epoch, **losses, "lr": lr}
        progress_log.write(json.dumps(record) + "\n")
        progress_log.flush()
        for key, value in losses.items():
            self.writer.add_scalar(f"train/{key}", value, p.step)
        self.writer.add_scalar("train/lr", lr, p.step)
        self.writer.add_scalar("train/tgt_tokens_per_s", tok_s, p.step)

    def _train_metrics(self, stop_reason: str, interrupted: bool) -> dict[str, Any]:
        p, per_epoch = self.progress, self.sampler.num_batches(self.progress.epoch)
        return {
            "model": self.cfg.model.arch,
            "attention": self.cfg.attention.type if isinstance(self.cfg.model, RNNConfig) else None,
            "params": self.params,
            "steps": p.step,
            "epochs": round(p.epoch + p.batch_in_epoch / max(1, per_epoch // self.world_size), 3),
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

    def close(self) -> None:
        """Flush and close TensorBoard and the run's log (after any post-training work that
        logs to them)."""
        if self.writer:
            self.writer.close()
        teardown_logging()

    def _validate_and_sync(self) -> bool:
        """Validate on rank 0; every rank learns whether to stop."""
        stop = self.after_validation(self.validate()) if self.main else False
        if self.world_size > 1:
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop
