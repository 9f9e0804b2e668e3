"""RNN attention mechanisms: Bahdanau et al. 2015 and every variant of Luong et al. 2015.

One stateless interface for all of them (B batch, S source length, T target steps):

    keys = attn.project_keys(encoder_outputs)          # (B,S,Hk) -> (B,S,Hp), once per batch
    context, weights = attn(query, keys, values, mask, step)
        query   (B,T,Hq)  decoder state(s); T=1 step-wise, T>1 when all states are known
        keys    (B,S,Hp)  project_keys(encoder outputs)
        values  (B,S,Hv)  encoder outputs
        mask    (B,S)     bool, True = real token, False = padding
        step    int       decoder position of query[:, 0]; query[:, i] is at step + i
        context (B,T,Hv)  sum_s weights * values
        weights (B,T,S)   always float32; exactly 0.0 on padding (and outside a local window)

Normalisers (`attention.normalizer`, every mechanism, global and local): `softmax`, or the sparse
`sparsemax` (Martins & Astudillo 2016, eq. 2: the Euclidean projection of the scores onto the
simplex) and `entmax15` (1.5-entmax, Peters, Niculae & Martins 2019, eq. 4 with alpha = 1.5),
from the `entmax` package with their exact gradients. Both give exact zeros to low scores; every
normaliser gives exact zeros on padding and outside local windows, and rows that sum to 1.

Dtypes: scores may be computed in bf16 under autocast, but the softmax (and the local
Gaussian and p_t) are always computed in float32, and `weights` are returned in float32.
`context` is computed as `weights.to(values.dtype) @ values`, so it has the dtype of `values`
(or the autocast dtype). A row whose mask is all False (a fully padded sentence) gets all-zero
weights and a zero context, never NaN.

|  type            | score / alignment                                  | paper                   |
|------------------|----------------------------------------------------|-------------------------|
|  bahdanau        | v_a^T tanh(W_a s_{t-1} + U_a h_j)                  | Bahdanau 2015, A.1.2    |
|  luong_dot       | h_t^T h̄_s                                          | Luong 2015, eq. 8       |
|  luong_general   | h_t^T W_a h̄_s                                      | Luong 2015, eq. 8       |
|  luong_concat    | v_a^T tanh(W_a [h_t; h̄_s])                         | Luong 2015, eq. 8       |
|  luong_location  | a_t = softmax(W_a h_t)                             | Luong 2015, sec. 3.1    |
|  local_m         | p_t = t, softmax over [p_t - D, p_t + D]           | Luong 2015, sec. 3.2    |
|  local_p         | p_t = S sigmoid(v_p^T tanh(W_p h_t)), x Gaussian   | Luong 2015, eq. 9, 10   |

The mechanism table `MECHANISMS` maps each `attention.type` to its class; each class declares
what other code needs to know about it (no code elsewhere tests a mechanism's name):
`query` ("previous": the decoder passes s_{t-1} and uses the Bahdanau layout; "current": h_t,
the Luong layout), `source_positions` (a fixed source-length limit, or None), `macs` (analytic
forward multiply-adds, for the benchmark's FLOP count) and `from_config`. Adding a mechanism
means one class here (or `register(cls)`), one conf/attention/NAME.yaml and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from nmt.config import AttentionConfig, ConfigError
from nmt.models.hard_attention import HARD, HARD_INFERENCE, REWARDS


@dataclass(frozen=True)
class AttentionMacs:
    """Forward multiply-adds of one mechanism, split by what they scale with (A = query size)."""

    per_source: float  # key projection, once per source position
    per_target: float  # query-side projections, once per target position
    per_pair: float  # score + context, per (target, source) position read
    window: int | None = None  # source positions read per target step; None = all of them


NORMALIZERS = ("softmax", "sparsemax", "entmax15")  # attention.normalizer
# sparsemax and 1.5-entmax give exactly 0 to any score more than 2 below the row's largest (their
# threshold tau satisfies tau >= z_max - 1 and tau >= z_max / 2 - 1), so masked scores are set
# this far below the largest real score: finite (no NaN in the sort-based threshold), and 0.
_SPARSE_MARGIN = 16.0


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dim in float32, exactly 0.0 where `mask` is False (and on all-False rows).

    scores (B,T,S) any float dtype; mask broadcastable to (B,T,S), bool. Returns float32 (B,T,S).
    """
    scores = scores.float()  # (B,T,S) softmax in float32, also under bf16 autocast
    # a finite fill (not -inf) keeps an all-masked row finite: it becomes uniform, then zeroed below
    scores = scores.masked_fill(~mask, torch.finfo(torch.float32).min)  # (B,T,S)
    weights = torch.softmax(scores, dim=-1)  # (B,T,S) exp(min - max) underflows to exactly 0
    return weights.masked_fill(~mask, 0.0)  # (B,T,S) exact zeros, incl. fully padded rows


def masked_normalize(scores: Tensor, mask: Tensor, normalizer: str = "softmax") -> Tensor:
    """`masked_softmax`, or sparsemax / 1.5-entmax over the positions where `mask` is True, in
    float32 with exact zeros where it is False (and on all-False rows). Shapes as there."""
    if normalizer == "softmax":
        return masked_softmax(scores, mask)
    from entmax import entmax15, sparsemax

    mask = mask.expand_as(scores)  # (B,T,S)
    scores = scores.float()  # (B,T,S)
    top = scores.masked_fill(~mask, float("-inf")).amax(dim=-1, keepdim=True)  # (B,T,1)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all-masked rows: 0
    scores = torch.where(mask, scores, top - _SPARSE_MARGIN)  # (B,T,S) finite, exactly 0 below
    if normalizer == "sparsemax":
        weights = sparsemax(scores, dim=-1)  # Martins & Astudillo 2016, eq. 2
    elif normalizer == "entmax15":
        weights = entmax15(scores, dim=-1)  # Peters et al. 2019, eq. 4, alpha = 1.5
    else:
        raise ValueError(f"unknown normalizer {normalizer!r}; one of {', '.join(NORMALIZERS)}")
    return weights.masked_fill(~mask, 0.0)  # (B,T,S) exact zeros, incl. fully padded rows


class Attention(nn.Module):
    """Base class: score every source position, masked normaliser (softmax unless
    `normalizer` says otherwise), weighted sum of the values.

    Subclasses override `score` (and `project_keys` when part of the score depends only on the
    encoder outputs, so it is computed once per source batch instead of once per step), and
    declare their name, decoder layout and cost (see the module docstring).
    """

    name: ClassVar[str] = ""  # attention.type
    query: ClassVar[str] = "current"  # "previous" (s_{t-1}, Bahdanau layout) | "current" (h_t)
    normalizer: str = "softmax"  # attention.normalizer, set by `build_attention`

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
        """The module for decoder states of `query_size` and encoder outputs of `key_size`."""
        return cls(query_size, key_size)

    @classmethod
    def source_positions(cls, cfg: AttentionConfig) -> int | None:
        """The most source positions (incl. EOS) the mechanism can score; None = no limit."""
        return None

    @classmethod
    def check(cls, cfg: AttentionConfig, max_len: int) -> None:
        """Raise ConfigError (one line) for settings this mechanism cannot use; `max_len` is
        data.max_len, the longest training source (tokens, without EOS)."""
        if cfg.score not in SCORES:
            raise ConfigError(f"attention.score={cfg.score!r} is not one of {', '.join(SCORES)}")
        if cfg.normalizer not in NORMALIZERS:
            raise ConfigError(
                f"attention.normalizer={cfg.normalizer!r} is not one of {', '.join(NORMALIZERS)}"
            )
        if cfg.hard not in HARD:
            raise ConfigError(f"attention.hard={cfg.hard!r} is not one of {', '.join(HARD)}")
        if cfg.hard_inference not in HARD_INFERENCE:
            raise ConfigError(
                f"attention.hard_inference={cfg.hard_inference!r} is not one of "
                f"{', '.join(HARD_INFERENCE)}"
            )
        if cfg.reward not in REWARDS:
            raise ConfigError(f"attention.reward={cfg.reward!r} is not one of {', '.join(REWARDS)}")
        if not 0 <= cfg.soft_mix <= 1:
            raise ConfigError(f"attention.soft_mix={cfg.soft_mix} must be in [0, 1]")
        if not 0 <= cfg.soft_mix_anneal <= 1:
            raise ConfigError(f"attention.soft_mix_anneal={cfg.soft_mix_anneal} must be in [0, 1]")
        if cfg.gumbel_tau <= 0:
            raise ConfigError(f"attention.gumbel_tau={cfg.gumbel_tau} must be > 0")
        if not 0 <= cfg.baseline_decay < 1:
            raise ConfigError(f"attention.baseline_decay={cfg.baseline_decay} must be in [0, 1)")

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        """Forward multiply-adds; this default: q . k scores and the weighted sum of values."""
        return AttentionMacs(0, 0, query_size + key_size)

    def project_keys(self, keys: Tensor) -> Tensor:
        """Encoder outputs (B,S,Hk) -> the precomputed key projection (B,S,Hp). Identity here."""
        return keys

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """Unnormalised alignment scores (B,T,S) of query (B,T,Hq) against projected keys (B,S,Hp)."""
        raise NotImplementedError

    def distribution(self, query: Tensor, keys: Tensor, mask: Tensor, step: int = 0) -> Tensor:
        """Float32 weights (B,T,S) over the source; `step` is unused by global attention."""
        scores = self.score(query, keys)  # (B,T,S)
        return masked_normalize(scores, mask[:, None, :], self.normalizer)  # (B,T,S) float32

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, step: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Context (B,T,Hv) and float32 weights (B,T,S): the weighted average of the values."""
        weights = self.distribution(query, keys, mask, step)  # (B,T,S) float32
        context = weights.to(values.dtype) @ values  # (B,T,S) @ (B,S,Hv) -> (B,T,Hv)
        return context, weights


class BahdanauAttention(Attention):
    """Additive attention of Bahdanau et al. 2015; the decoder passes s_{t-1} as the query.

    Attention hidden size n' = query_size. No biases, as in the paper's equations.
    """

    name = "bahdanau"
    query = "previous"

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        A = query_size  # U_a h_j per source; W_a s_{t-1} per target; v_a . tanh + context per pair
        return AttentionMacs(key_size * A, query_size * A, A + key_size)

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.W_a = nn.Linear(query_size, query_size, bias=False)  # Hq -> A (A = Hq)
        self.U_a = nn.Linear(key_size, query_size, bias=False)  # Hk -> A
        self.v_a = nn.Linear(query_size, 1, bias=False)  # A -> 1

    def project_keys(self, keys: Tensor) -> Tensor:
        """U_a h_j for every source position: (B,S,Hk) -> (B,S,A)."""
        return self.U_a(keys)  # (B,S,A) Bahdanau 2015, A.1.2: U_a h_j is precomputed

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j): (B,T,Hq), (B,S,A) -> (B,T,S)."""
        q = self.W_a(query)  # (B,T,A)
        # broadcast (B,T,1,A) + (B,1,S,A) -> (B,T,S,A); tanh in place on the fresh sum: one
        # (B,T,S,A) tensor instead of two per step
        hidden = (q[:, :, None, :] + keys[:, None, :, :]).tanh_()  # (B,T,S,A)
        return self.v_a(hidden).squeeze(-1)  # (B,T,S) Bahdanau 2015, eq. 6 / A.1.2


class LuongDotAttention(Attention):
    """Luong et al. 2015 global attention, `dot` score; needs query_size == key_size."""

    name = "luong_dot"

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        if query_size != key_size:
            raise ValueError(
                f"dot attention needs query_size == key_size, got {query_size} and {key_size}; "
                "use 'general' or 'concat'"
            )

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """h_t^T h̄_s: (B,T,H), (B,S,H) -> (B,T,S)."""
        # Luong 2015, eq. 8: dot
        return query @ keys.transpose(1, 2)  # (B,T,H) @ (B,H,S) -> (B,T,S)


class LuongGeneralAttention(Attention):
    """Luong et al. 2015 global attention, `general` score h_t^T W_a h̄_s (W_a h̄_s precomputed)."""

    name = "luong_general"

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        return AttentionMacs(key_size * query_size, 0, query_size + key_size)  # W_a h̄_s once

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.W_a = nn.Linear(key_size, query_size, bias=False)  # Hk -> Hq

    def project_keys(self, keys: Tensor) -> Tensor:
        """W_a h̄_s: (B,S,Hk) -> (B,S,Hq)."""
        return self.W_a(keys)  # (B,S,Hq)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """h_t^T (W_a h̄_s): (B,T,Hq), (B,S,Hq) -> (B,T,S)."""
        # Luong 2015, eq. 8: general
        return query @ keys.transpose(1, 2)  # (B,T,Hq) @ (B,Hq,S) -> (B,T,S)


class LuongConcatAttention(Attention):
    """Luong et al. 2015 global attention, `concat` score v_a^T tanh(W_a [h_t; h̄_s]).

    W_a [h_t; h̄_s] is split as W1 h_t + W2 h̄_s with W2 h̄_s precomputed; hidden size = query_size.
    """

    name = "luong_concat"

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        A = query_size  # W2 h̄_s per source, W1 h_t per target, v_a . tanh + context per pair
        return AttentionMacs(key_size * A, query_size * A, A + key_size)

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.W1 = nn.Linear(query_size, query_size, bias=False)  # h_t half of W_a: Hq -> A
        self.W2 = nn.Linear(key_size, query_size, bias=False)  # h̄_s half of W_a: Hk -> A
        self.v_a = nn.Linear(query_size, 1, bias=False)  # A -> 1

    def project_keys(self, keys: Tensor) -> Tensor:
        """W2 h̄_s, the source half of W_a [h_t; h̄_s]: (B,S,Hk) -> (B,S,A)."""
        return self.W2(keys)  # (B,S,A)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """v_a^T tanh(W1 h_t + W2 h̄_s): (B,T,Hq), (B,S,A) -> (B,T,S)."""
        q = self.W1(query)  # (B,T,A)
        # broadcast (B,T,1,A) + (B,1,S,A) -> (B,T,S,A); tanh in place on the fresh sum: one
        # (B,T,S,A) tensor instead of two per step
        hidden = (q[:, :, None, :] + keys[:, None, :, :]).tanh_()  # (B,T,S,A)
        return self.v_a(hidden).squeeze(-1)  # (B,T,S) Luong 2015, eq. 8: concat


class LuongLocationAttention(Attention):
    """Luong et al. 2015 location-based attention a_t = softmax(W_a h_t); ignores the keys.

    W_a maps the query to `max_src_len` position scores, sliced to the batch's S and masked.
    """

    name = "luong_location"

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
        return cls(query_size, cfg.max_src_len)

    @classmethod
    def source_positions(cls, cfg: AttentionConfig) -> int | None:
        return cfg.max_src_len  # W_a has one row per source position

    @classmethod
    def check(cls, cfg: AttentionConfig, max_len: int) -> None:
        super().check(cfg, max_len)
        if cfg.max_src_len < max_len + 1:
            raise ConfigError(
                f"attention.max_src_len={cfg.max_src_len} must be >= data.max_len + 1 ({max_len + 1})"
            )

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        return AttentionMacs(0, query_size * cfg.max_src_len, key_size)  # W_a h_t; context

    def __init__(self, query_size: int, max_src_len: int) -> None:
        super().__init__()
        self.max_src_len = max_src_len
        self.W_a = nn.Linear(query_size, max_src_len, bias=False)  # Hq -> max_src_len

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """W_a h_t restricted to the S source positions: (B,T,Hq) -> (B,T,S)."""
        S = keys.size(1)
        if S > self.max_src_len:
            raise ValueError(
                f"luong_location attention got a source of length {S} > "
                f"attention.max_src_len={self.max_src_len}; raise attention.max_src_len"
            )
        # Luong 2015, sec. 3.1: location-based a_t = softmax(W_a h_t)
        return self.W_a(query)[:, :, :S]  # (B,T,max_src_len) -> (B,T,S)


# --- the global scores a local attention can use ---------------------------------------------
SCORES: dict[str, type[Attention]] = {
    "dot": LuongDotAttention,
    "general": LuongGeneralAttention,
    "concat": LuongConcatAttention,
}  # the global scores a local attention can use (attention.score)


def build_score(score: str, query_size: int, key_size: int) -> Attention:
    """The global Luong attention whose `score` a local attention uses: dot | general | concat."""
    if score not in SCORES:
        raise ValueError(f"attention.score={score!r} is not one of {', '.join(SCORES)}")
    return SCORES[score](query_size, key_size)
