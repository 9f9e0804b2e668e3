"""The analytic FLOP model behind the benchmark's MFU: matmul work per sentence pair.

Matmul FLOPs only (a multiply-add = 2 FLOPs); elementwise ops, softmax and the loss are not
counted. Training = forward + backward ~= 3 x forward. Per sentence b: S_b source positions
(tokens + EOS), T_b target positions (tokens + EOS = BOS + tokens). Encoder work is counted per
source position, decoder/attention/output work per target position and attention scores and
contexts per (target, source) pair; `flops_per_tgt_token` = the batch total / target tokens.

What differs between the RNN attention mechanisms comes from the mechanism table: each attention
class declares its `macs` (nmt.models.attention); `rnn_forward_macs` counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AttentionMacs:
    """Forward multiply-adds one attention mechanism adds to an RNN encoder-decoder."""

    key_per_src: int  # key projection, per source position (computed once per sentence)
    query_per_tgt: int  # query projection (and local-p's position predictor), per target step
    per_pair: int  # score + context, per (target, source) pair that is read
    window: int | None  # source positions read per target step (local); None = all S
    bahdanau_layout: bool  # decoder input carries the context; readout (H + K + E) x H


def attention_macs(att_cfg: Any, H: int, K: int, A: int) -> AttentionMacs:
    """Multiply-adds of the mechanism `att_cfg` (an AttentionConfig), as its class declares them
    (`Attention.macs` in the mechanism table, nmt.models.mechanisms; its layout from `query`).

    H decoder hidden (the query), K encoder output size (keys and values), A attention size
    (= H for every mechanism of nmt; the classes size their attention layers by the query).
    """
    from nmt.models.mechanisms import mechanism

    cls = mechanism(att_cfg)
    m = cls.macs(att_cfg, H, K)
    return AttentionMacs(
        key_per_src=m.per_source,
        query_per_tgt=m.per_target,
        per_pair=m.per_pair,
        window=m.window,
        bahdanau_layout=cls.query == "previous",
    )


def rnn_forward_macs(model: Any, att_cfg: Any, tgt_vocab: int, S: Any, T: Any) -> float:
    """RNN encoder-decoder (nmt.models.rnn), forward multiply-adds of sentences with lengths S, T.

    g = 4 gates (LSTM) or 3 (GRU); E emb; h = enc hidden per direction; d directions; K = d*h;
    H dec hidden; V target vocabulary; A = H (attention hidden size).
      per source position: encoder  sum_layers d * g*h*(in + h)   (in = E, then K)
                           + the mechanism's key projection
      per target position: decoder RNN g*H*(E + extra + H) (+ (L-1) * g*H*2H), extra = K (bahdanau
                           context) or H (input feeding) or 0
                           + the mechanism's query projection
                           readout (H + K + E)*H (bahdanau) or (K + H)*H (Luong W_c)
                           output H*V
      per (target, source) pair read: the mechanism's score + context
      per sentence:        bridge K*H*L
    """
    import numpy as np

    S, T = np.asarray(S, dtype=np.float64), np.asarray(T, dtype=np.float64)
    g = 4 if model.cell == "lstm" else 3
    E, h, H, V = model.emb_size, model.enc_hidden, model.dec_hidden, tgt_vocab
    d = 2 if model.bidirectional else 1
    K, A = d * h, H
    att = attention_macs(att_cfg, H, K, A)
    enc = sum(d * g * h * ((E if layer == 0 else K) + h) for layer in range(model.enc_layers))
    extra = K if att.bahdanau_layout else (H if model.input_feed else 0)
    dec = g * H * (E + extra + H) + (model.dec_layers - 1) * g * H * 2 * H
    readout = (H + K + E) * H if att.bahdanau_layout else (K + H) * H
    per_tgt = dec + att.query_per_tgt + readout + H * V
    pairs = S * T if att.window is None else np.minimum(S, att.window) * T
    per_sentence = K * H * model.dec_layers
    return float(
        (S * (enc + att.key_per_src)).sum() + (T * per_tgt).sum() + att.per_pair * pairs.sum()
    ) + (per_sentence * len(S))


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
