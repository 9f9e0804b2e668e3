"""Models. Both families implement one interface, used by the trainer and `nmt.decoding`.

    forward(src (B,S), src_lens (B,), tgt_in (B,T), return_attention=False, project=True)
        -> (logits (B,T,V), attention (B,T,*E,S) or None)       # teacher forcing
        # project=False: the final states (B,T,H) instead of logits; the Transformer also
        # takes guided_attention_kwargs(cfg) (full-context guided alignment)
    encode(src, src_lens) -> memory: dict[str, Tensor]           # every tensor batch-first
    init_state(memory) -> state: dict[str, Tensor]               # every tensor batch-first
    reorder_state(state, rows (N',)) -> state                    # the hypotheses `rows`
    decode_step(y_prev (N,), state, memory, step, need_attention=False, vocab=None)
        -> (log_probs (N,V) float32, attention (N,*E,S) or None, new_state)
        # vocab (M,) ids (a shortlist, nmt.shortlist): log-probs over those ids only, (N, M)

`step` is the 0-based position of `y_prev` in the target (0 for BOS). Beam search reorders
hypotheses by `index_select(0, idx)` on every tensor of `memory` and by `reorder_state` on
`state` (the same, or done lazily by the next step: the Transformer), so batch must be dim 0
everywhere. Attention has no extra dims (E = ()) for the RNN and (layers, heads) for the
Transformer; `reduce_attention` picks a layer/head or averages heads.
"""

from __future__ import annotations

import torch
from torch import nn

from nmt.config import AttentionConfig, Config, RNNConfig, TransformerConfig
from nmt.models.mechanisms import mechanism


def check_config(cfg: Config) -> None:
    """What `nmt.config.validate` cannot know: the mechanism table's names and each mechanism's
    own constraints. ConfigError (one line) naming the key; call before any data is read."""
    if isinstance(cfg.model, RNNConfig):
        mechanism(cfg.attention).check(cfg.attention, cfg.data.max_len)


def build_model(
    model_cfg: RNNConfig | TransformerConfig,
    attention_cfg: AttentionConfig,
    src_vocab: int,
    tgt_vocab: int,
) -> nn.Module:
    """Build the model a config describes."""
    if isinstance(model_cfg, TransformerConfig):
        from nmt.models.transformer import Transformer

        return Transformer(model_cfg, src_vocab, tgt_vocab)
    from nmt.models.rnn import RNNSeq2Seq

    return RNNSeq2Seq(model_cfg, attention_cfg, src_vocab, tgt_vocab)


def reduce_attention(
    attention: torch.Tensor, layer: int = -1, head: int | None = None
) -> torch.Tensor:
    """(T, S) weights from (T, S) or (T, L, heads, S): one layer, one head or the head average."""
    if attention.dim() == 2:
        return attention
    per_layer = attention[:, layer]  # (T, heads, S)
    return per_layer.mean(dim=1) if head is None else per_layer[:, head]


def guided_attention_kwargs(cfg: Config) -> dict[str, int]:
    """What the model's forward needs to return the attention guided alignment trains, for
    training and for reading it alike: `{"full_context_layer": layer}` for a Transformer guided
    with full target context (`trainer.guided_alignment.full_context`: that layer comes from
    `Transformer.full_context_attention`), else nothing."""
    g = cfg.trainer.guided_alignment
    return {"full_context_layer": g.layer} if g.weight > 0 and g.full_context else {}


def readout_shift(cfg: Config) -> int:
    """How many decoder steps after the one that predicts target piece y_k the attention query
    has first *read* y_k (the shifted read-out of Chen et al. 2020, sec. 3).

    Transformer and Luong layout (query "current": h_t = RNN(y_{t-1}, h_{t-1}) is the query):
    the step that predicts y_{k+1} has y_k as its input, so 1. Bahdanau layout (query
    "previous": the query is s_{t-1}, and y_{t-1} enters the RNN only after the attention): y_k
    first reaches the query two steps later, so 2, and the last piece needs one step past EOS."""
    if isinstance(cfg.model, RNNConfig):
        return 2 if mechanism(cfg.attention).query == "previous" else 1
    return 1


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def source_limit(cfg: Config) -> int | None:
    """Longest source (tokens, without EOS) the model accepts; longer input is truncated."""
    if isinstance(cfg.model, RNNConfig):
        positions = mechanism(cfg.attention).source_positions(cfg.attention)
        return None if positions is None else positions - 1  # one position is EOS's
    return cfg.model.max_positions - 1


def model_label(cfg: Config) -> str:
    """'rnn bahdanau', 'transformer', ...: the one name of a model for titles, logs and tables."""
    if isinstance(cfg.model, RNNConfig):
        return f"rnn {cfg.attention.type}"
    return cfg.model.arch
