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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nmt.config import AttentionConfig


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dim in float32, exactly 0.0 where `mask` is False (and on all-False rows).

    scores (B,T,S) any float dtype; mask broadcastable to (B,T,S), bool. Returns float32 (B,T,S).
    """
    scores = scores.float()  # (B,T,S) softmax in float32, also under bf16 autocast
    # a finite fill (not -inf) keeps an all-masked row finite: it becomes uniform, then zeroed below
    scores = scores.masked_fill(~mask, torch.finfo(torch.float32).min)  # (B,T,S)
    weights = torch.softmax(scores, dim=-1)  # (B,T,S) exp(min - max) underflows to exactly 0
    return weights.masked_fill(~mask, 0.0)  # (B,T,S) exact zeros, incl. fully padded rows


class Attention(nn.Module):
    """Base class: score every source position, masked softmax, weighted sum of the values.

    Subclasses override `score` (and `project_keys` when part of the score depends only on the
    encoder outputs, so it is computed once per source batch instead of once per step).
    """

    def project_keys(self, keys: Tensor) -> Tensor:
        """Encoder outputs (B,S,Hk) -> the precomputed key projection (B,S,Hp). Identity here."""
        return keys

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """Unnormalised alignment scores (B,T,S) of query (B,T,Hq) against projected keys (B,S,Hp)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, step: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Context (B,T,Hv) and float32 weights (B,T,S); `step` is unused by global attention."""
        scores = self.score(query, keys)  # (B,T,S)
        weights = masked_softmax(scores, mask[:, None, :])  # (B,T,S) float32
        context = weights.to(values.dtype) @ values  # (B,T,S) @ (B,S,Hv) -> (B,T,Hv)
        return context, weights


class BahdanauAttention(Attention):
    """Additive attention of Bahdanau et al. 2015; the decoder passes s_{t-1} as the query.

    Attention hidden size n' = query_size. No biases, as in the paper's equations.
    """

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
        # broadcast (B,T,1,A) + (B,1,S,A) -> (B,T,S,A)
        hidden = torch.tanh(q[:, :, None, :] + keys[:, None, :, :])  # (B,T,S,A)
        return self.v_a(hidden).squeeze(-1)  # (B,T,S) Bahdanau 2015, eq. 6 / A.1.2


class LuongDotAttention(Attention):
    """Luong et al. 2015 global attention, `dot` score; needs query_size == key_size."""

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
        # broadcast (B,T,1,A) + (B,1,S,A) -> (B,T,S,A)
        hidden = torch.tanh(q[:, :, None, :] + keys[:, None, :, :])  # (B,T,S,A)
        return self.v_a(hidden).squeeze(-1)  # (B,T,S) Luong 2015, eq. 8: concat


class LuongLocationAttention(Attention):
    """Luong et al. 2015 location-based attention a_t = softmax(W_a h_t); ignores the keys.

    W_a maps the query to `max_src_len` position scores, sliced to the batch's S and masked.
    """

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


class LocalAttention(Attention):
    """Luong et al. 2015 sec. 3.2 local attention around an aligned position p_t (B,T).

    Alignment = softmax of `align.score` over the positions s with |s - p_t| <= D that are not
    padding (eq. 7 restricted to the window), zero elsewhere; optionally multiplied by the
    Gaussian exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D/2 (eq. 10). Positions are 0-based.
    Subclasses define `predict_position`.
    """

    def __init__(self, align: Attention, window: int, gaussian: bool) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"local attention needs window D >= 1, got {window}")
        self.align = align  # a global Luong score: dot | general | concat
        self.window = window  # D
        self.sigma = window / 2  # Luong 2015, sec. 3.2: sigma = D/2 (set empirically)
        self.gaussian = gaussian

    def project_keys(self, keys: Tensor) -> Tensor:
        """The key projection of the underlying score function: (B,S,Hk) -> (B,S,Hp)."""
        return self.align.project_keys(keys)

    def predict_position(self, query: Tensor, mask: Tensor, step: int = 0) -> Tensor:
        """Aligned source position p_t (B,T) float32 for query (B,T,Hq) and mask (B,S)."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, step: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Context (B,T,Hv) and float32 weights (B,T,S), zero outside [p_t - D, p_t + D]."""
        S = keys.size(1)
        p_t = self.predict_position(query, mask, step)  # (B,T) float32
        positions = torch.arange(S, device=keys.device, dtype=torch.float32)  # (S,)
        dist = positions[None, None, :] - p_t[:, :, None]  # (1,1,S) - (B,T,1) -> (B,T,S)
        in_window = dist.abs() <= self.window  # (B,T,S) Luong 2015, sec. 3.2: window [p_t-D, p_t+D]
        allowed = in_window & mask[:, None, :]  # (B,T,S) inside the window and not padding
        scores = self.align.score(query, keys)  # (B,T,S)
        weights = masked_softmax(scores, allowed)  # (B,T,S) Luong 2015, eq. 7 over the window
        if self.gaussian:
            # Luong 2015, eq. 10: Gaussian centred on p_t, sigma = D/2
            weights = weights * torch.exp(-dist.pow(2) / (2 * self.sigma**2))  # (B,T,S)
        context = weights.to(values.dtype) @ values  # (B,T,S) @ (B,S,Hv) -> (B,T,Hv)
        return context, weights


class LocalMAttention(LocalAttention):
    """Local-m (monotonic) attention, Luong et al. 2015 sec. 3.2: p_t = t.

    p_t = step + i for query[:, i], clipped per sentence to [0, S_b - 1] (S_b = mask.sum(-1)).
    `gaussian=None` follows the paper: local-m uses a_t of eq. 7 in the window, NO Gaussian.
    """

    def __init__(self, align: Attention, window: int, gaussian: bool | None = None) -> None:
        super().__init__(align, window, gaussian=False if gaussian is None else gaussian)

    def predict_position(self, query: Tensor, mask: Tensor, step: int = 0) -> Tensor:
        """p_t = t clipped to [0, S_b - 1]: (B,T) float32."""
        B, T = query.shape[:2]
        last = (mask.sum(-1) - 1).clamp(min=0).float()  # (B,) S_b - 1
        t = step + torch.arange(T, device=query.device, dtype=torch.float32)  # (T,)
        p_t = torch.minimum(t[None, :].expand(B, T), last[:, None])  # (B,T) Luong 2015: p_t = t
        return p_t.clamp(min=0.0)  # (B,T)


class LocalPAttention(LocalAttention):
    """Local-p (predictive) attention, Luong et al. 2015 sec. 3.2, eq. 9-10.

    p_t = S_b * sigmoid(v_p^T tanh(W_p h_t)) with S_b the true length of each sentence, so
    p_t is in [0, S_b] (0-based positions s = 0..S_b-1). `gaussian=None` follows the paper:
    WITH the Gaussian, which is also the only path by which W_p and v_p receive gradients.
    """

    def __init__(
        self, align: Attention, query_size: int, window: int, gaussian: bool | None = None
    ) -> None:
        super().__init__(align, window, gaussian=True if gaussian is None else gaussian)
        self.W_p = nn.Linear(query_size, query_size, bias=False)  # Hq -> Hq
        self.v_p = nn.Linear(query_size, 1, bias=False)  # Hq -> 1

    def predict_position(self, query: Tensor, mask: Tensor, step: int = 0) -> Tensor:
        """p_t = S_b * sigmoid(v_p^T tanh(W_p h_t)): (B,T) float32 in [0, S_b]."""
        src_len = mask.sum(-1).float()  # (B,) S_b, true length per sentence
        logit = self.v_p(torch.tanh(self.W_p(query))).squeeze(-1)  # (B,T,Hq) -> (B,T)
        return src_len[:, None] * torch.sigmoid(logit.float())  # (B,T) Luong 2015, eq. 9


def build_score(score: str, query_size: int, key_size: int) -> Attention:
    """The global Luong attention whose `score` a local attention uses: dot | general | concat."""
    if score == "dot":
        return LuongDotAttention(query_size, key_size)
    elif score == "general":
        return LuongGeneralAttention(query_size, key_size)
    elif score == "concat":
        return LuongConcatAttention(query_size, key_size)
    raise ValueError(f"attention.score={score!r} is not one of dot, general, concat")


def build_attention(cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
    """The attention module `cfg.type` names, for decoder states of query_size, encoder outputs of key_size."""
    if cfg.type == "bahdanau":
        return BahdanauAttention(query_size, key_size)
    elif cfg.type == "luong_dot":
        return LuongDotAttention(query_size, key_size)
    elif cfg.type == "luong_general":
        return LuongGeneralAttention(query_size, key_size)
    elif cfg.type == "luong_concat":
        return LuongConcatAttention(query_size, key_size)
    elif cfg.type == "luong_location":
        return LuongLocationAttention(query_size, cfg.max_src_len)
    elif cfg.type == "local_m":
        align = build_score(cfg.score, query_size, key_size)
        return LocalMAttention(align, cfg.window, cfg.gaussian)
    elif cfg.type == "local_p":
        align = build_score(cfg.score, query_size, key_size)
        return LocalPAttention(align, query_size, cfg.window, cfg.gaussian)
    raise ValueError(f"attention.type={cfg.type!r} is unknown")
