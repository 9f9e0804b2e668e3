"""What the trainer measures on the dev split while training: loss, perplexity, BLEU and chrF,
and the attention of a few dev sentences drawn to TensorBoard."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nmt.config import Config
from nmt.data import DataBundle
from nmt.data.batching import Batch, TokenBatchSampler, collate
from nmt.decoding import Hypothesis, Lengths, decode_corpus
from nmt.metrics import corpus_scores
from nmt.models import reduce_attention, source_limit
from nmt.runtime import Precision, autocast


class DevSet:
    """The dev split of a run, decoded and scored with the model as it is at the moment."""

    def __init__(
        self,
        cfg: Config,
        data: DataBundle,
        model: nn.Module,
        device: torch.device,
        precision: Precision,
    ):
        self.cfg, self.data, self.model = cfg, data, model
        self.device, self.precision = device, precision

    def translate_ids(
        self, sources: list, beam: int, need_attention: bool = False
    ) -> list[Hypothesis]:
        """Decode token-id sources with the `decode.*` settings (in eval mode)."""
        d = self.cfg.decode
        self.model.eval()
        with autocast(self.device, self.precision):
            return decode_corpus(
                self.model,
                sources,
                beam,
                d.length_penalty,
                Lengths.of(d),
                d.batch_size,
                self.device,
                need_attention,
                source_limit(self.cfg),
            )

    @torch.no_grad()
    def scores(self, loss_sum: Callable[[Batch], torch.Tensor]) -> dict[str, float]:
        """Dev loss (from `loss_sum`, the summed token loss of a batch), perplexity, and BLEU
        and chrF of greedy (or `decode.valid_beam`) translations."""
        self.model.eval()
        valid, t = self.data.valid, self.cfg.trainer
        sampler = TokenBatchSampler(
            valid.src.lengths, valid.tgt.lengths, t.max_tokens, shuffle=False, seed=0
        )
        nll, tokens = 0.0, 0
        limit = source_limit(self.cfg)  # dev sentences are not length-filtered like training
        for idx in sampler.batches(0):
            sources = [valid.src[i][:limit] for i in idx]
            batch = collate(sources, [valid.tgt[i] for i in idx], idx).to(self.device)
            nll += float(loss_sum(batch))
            tokens += batch.n_tgt_tokens
        n = min(len(valid.src_text), t.valid_max_sentences or len(valid.src_text))
        hyps = self.translate_ids([valid.src[i] for i in range(n)], self.cfg.decode.valid_beam)
        text = self.data.tokenizer.decode_tgt([h.tokens for h in hyps])
        scores = corpus_scores(text, valid.tgt_text[:n])
        loss = nll / max(1, tokens)
        return {
            "loss": loss,
            "ppl": math.exp(min(loss, 50.0)),
            "bleu": scores["bleu"],
            "chrf": scores["chrf"],
        }

    def heatmaps(self, writer, step: int) -> None:
        """Attention of the first `trainer.num_heatmaps` dev sentences (greedy) to TensorBoard."""
        n = min(self.cfg.trainer.num_heatmaps, len(self.data.valid.src_text))
        if n == 0 or writer is None:
            return
        from nmt.viz import plot_heatmap

        valid, tok = self.data.valid, self.data.tokenizer
        hyps = self.translate_ids([valid.src[i] for i in range(n)], 1, need_attention=True)
        for i, h in enumerate(hyps):
            if h.attention is None or len(h.tokens) == 0:
                continue
            src = tok.src_pieces_with_eos(list(valid.src[i]))
            tgt = tok.tgt_pieces_from_ids(h.tokens)
            fig = plot_heatmap(reduce_attention(h.attention).numpy(), src, tgt, None, f"dev {i}")
            writer.add_figure(f"attention/dev_{i}", fig, step)
