"""Forced decoding: the attention a model pays while it is fed the reference translation.

The reference is fed with teacher forcing (`model.forward(..., return_attention=True)`,
batched, shortest first). Row t of a sentence's attention is the distribution used to predict
target piece t, row T predicts EOS; with `extra_steps` the decoder is also fed EOS (and more
EOS), one row each, so the shifted read-out (Chen et al. 2020) has a row for the last piece. The
last column is the source `</s>`. Both sides go through `Translator.prepare` first, so the model
sees the text the way it saw it in training (`data.lowercase`, `data.tokenize`). A Transformer
guided with full target context (`trainer.guided_alignment.full_context`) has its guided layer
read the way it was trained, from the pass without the future mask
(`nmt.models.guided_attention_kwargs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from nmt.align.common import AlignError, Link
from nmt.align.links import (
    SHIFT_ATT,
    extract,
    extraction_names,
    method_name,
)
from nmt.align.words import aggregate_to_words, piece_weights, word_ids_in
from nmt.data.batching import collate
from nmt.models import guided_attention_kwargs, readout_shift, reduce_attention
from nmt.vocab import EOS

if TYPE_CHECKING:
    from nmt.translate import Translator


def check_layer_head(cfg, layer: int = -1, head: int | None = None) -> None:
    """Raise AlignError if a Transformer `layer`/`head` is out of range for the config (both are
    ignored for RNN models, which have one attention distribution per step)."""
    if getattr(cfg.model, "arch", "rnn") != "transformer":
        return
    n_layers, n_heads = cfg.model.dec_layers, cfg.model.heads
    if not -n_layers <= layer < n_layers:
        raise AlignError(f"--layer {layer} is out of range: the decoder has {n_layers} layers")
    if head is not None and not -n_heads <= head < n_heads:
        raise AlignError(f"--head {head} is out of range: the model has {n_heads} heads")


def _encode(
    translator: Translator, src_lines: Sequence[str], tgt_lines: Sequence[str]
) -> tuple[list[list[int]], list[list[int]]]:
    """Piece ids of the prepared lines; sources cut to the model's source limit."""
    tok = translator.tokenizer
    src_ids = tok.encode_src([translator.prepare(line) for line in src_lines])
    tgt_ids = tok.encode_tgt([translator.prepare(line) for line in tgt_lines])
    return [ids[: translator.max_src_len] for ids in src_ids], tgt_ids


@torch.no_grad()
def forced_attention_all(
    translator: Translator,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    batch_size: int = 32,
    extra_steps: int = 0,
) -> list[np.ndarray]:
    """Teacher-forced attention for every sentence pair, float32, unreduced: (T + 1 +
    extra_steps, S + 1) for an RNN, (T + 1 + extra_steps, L, heads, S + 1) for a Transformer.

    Rows are the target pieces then EOS (row t predicts piece t), then `extra_steps` steps fed
    EOS; columns the source pieces (cut to the model's source limit) then `</s>`. The decoder
    is causal (and a full-context layer's pass does not see the extra steps), so they leave
    rows 0..T unchanged."""
    if len(src_lines) != len(tgt_lines):
        raise AlignError(f"{len(src_lines)} source but {len(tgt_lines)} target lines")
    src_ids, tgt_ids = _encode(translator, src_lines, tgt_lines)
    tgt_ids = [ids + [EOS] * extra_steps for ids in tgt_ids]
    # shortest first: batches of similar length waste little on padding
    order = sorted(range(len(src_ids)), key=lambda i: (len(src_ids[i]), len(tgt_ids[i])))
    out: list[np.ndarray] = [np.empty(0)] * len(src_ids)
    translator.model.eval()
    guided = guided_attention_kwargs(translator.cfg)
    for start in range(0, len(order), max(1, batch_size)):
        idx = order[start : start + batch_size]
        batch = collate([src_ids[i] for i in idx], [tgt_ids[i] for i in idx], idx)
        batch = batch.to(translator.device)
        kwargs = {}
        if guided:  # the full-context pass sees BOS and the pieces, not the extra EOS steps
            keys = torch.tensor([len(tgt_ids[i]) + 1 - extra_steps for i in idx])  # (B,)
            kwargs = {**guided, "full_context_keys": keys}
        _, att = translator.model(
            batch.src, batch.src_lens, batch.tgt_in, return_attention=True, **kwargs
        )  # (B,T+1,S+1) RNN, (B,T+1,L,heads,S+1) Transformer
        att = att.float().cpu()
        for k, i in enumerate(idx):
            a = att[k, : len(tgt_ids[i]) + 1][..., : len(src_ids[i]) + 1]  # padding cut off
            out[i] = a.numpy()
    return out


def forced_attention(
    translator: Translator,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    batch_size: int = 32,
    layer: int = -1,
    head: int | None = None,
    extra_steps: int = 0,
) -> list[np.ndarray]:
    """`forced_attention_all` reduced to (T + 1 + extra_steps, S + 1) per sentence: Transformer
    attention to one layer and one head or the head average (`nmt.models.reduce_attention`)."""
    check_layer_head(translator.cfg, layer, head)
    att = forced_attention_all(translator, src_lines, tgt_lines, batch_size, extra_steps)
    return [reduce_attention(torch.from_numpy(a), layer, head).numpy() for a in att]


@dataclass
class ModelLinks:
    """Links extracted from one model, in the model's (source word, target word) orientation."""

    links: dict[str, list[set[Link]]]  # method name -> links per sentence
    mismatched: list[int]  # 0-based lines whose piece-words do not match the whitespace words
    # line -> read-out ("" or SHIFT_ATT) -> (target words, source words) attention, for the
    # `keep_words` lines
    words: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def _gold_word_attention(
    translator: Translator,
    src: str,
    tgt: str,
    attention: np.ndarray,
    renormalize: bool,
    shifts: dict[str, int],
) -> dict[str, np.ndarray] | None:
    """One sentence's forced attention over the whitespace words of the given lines (the words
    the gold counts), (target words, source words), per read-out; None when the pieces do not
    group into them."""
    tok = translator.tokenizer
    src_words, tgt_words = src.split(), tgt.split()
    tgt_pieces = tok.tgt_pieces(translator.prepare(tgt))
    src_ids = word_ids_in(tok.src_pieces(translator.prepare(src)), src_words)
    tgt_ids = word_ids_in(tgt_pieces, tgt_words)
    if src_ids is None or tgt_ids is None:
        return None
    out = {}
    for name, shift in shifts.items():
        weights = piece_weights(attention, len(tgt_pieces), renormalize, shift)  # (T, S')
        out[name] = aggregate_to_words(weights, src_ids, tgt_ids, len(src_words), len(tgt_words))
    return out


def readouts(translator: Translator) -> dict[str, int]:
    """The read-outs `model_alignments` extracts from, each with its shift: the plain one ("",
    the step that predicts the word) and Shift-Att (SHIFT_ATT; Chen et al. 2020: the first step
    whose query has read the word, `nmt.models.readout_shift`)."""
    return {"": 0, SHIFT_ATT: readout_shift(translator.cfg)}


def readout_attention(
    translator: Translator,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    batch_size: int = 32,
) -> list[np.ndarray]:
    """`forced_attention_all` with the extra steps every read-out needs: what
    `model_alignments` reads, computed once for all layers and heads of a Transformer."""
    extra_steps = max(readouts(translator).values())
    return forced_attention_all(translator, src_lines, tgt_lines, batch_size, extra_steps)


def model_alignments(
    translator: Translator,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    thresholds: Sequence[float] = (0.3,),
    batch_size: int = 32,
    layer: int = -1,
    head: int | None = None,
    renormalize: bool = False,
    keep_words: Sequence[int] = (),
    attention: Sequence[np.ndarray] | None = None,
) -> ModelLinks:
    """Forced decoding, word aggregation and extraction for a model: `argmax` and
    `threshold>=T` (one method per T in `thresholds`) of the plain and the shifted read-out
    (`shift-att argmax`, ...; names: `nmt.align.links.method_name`).

    `attention`: these lines' `readout_attention`, when already computed (then no decoding
    here; `layer` and `head` choose from it). A sentence whose pieces do not group into the
    whitespace words of the given lines gets no links and is listed in `mismatched`. The
    word-level attention of the `keep_words` lines is kept in `words` (for figures)."""
    shifts = readouts(translator)
    check_layer_head(translator.cfg, layer, head)
    if attention is None:
        attention = readout_attention(translator, src_lines, tgt_lines, batch_size)
    if len(attention) != len(src_lines):
        raise AlignError(f"{len(attention)} attention matrices for {len(src_lines)} lines")
    att = [reduce_attention(torch.from_numpy(a), layer, head).numpy() for a in attention]
    methods = [  # (name, read-out, threshold or None for argmax)
        (method_name(extraction, readout), readout, threshold)
        for extraction, threshold in extraction_names(thresholds).items()
        for readout in shifts
    ]
    links = ModelLinks({name: [] for name, _, _ in methods}, [])
    for k, (s, t, a) in enumerate(zip(src_lines, tgt_lines, att)):
        words = _gold_word_attention(translator, s, t, a, renormalize, shifts)
        if words is None:
            links.mismatched.append(k)
        elif k in keep_words:
            links.words[k] = words
        for name, readout, threshold in methods:
            links.links[name].append(set() if words is None else extract(words[readout], threshold))
    return links
