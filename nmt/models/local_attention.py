"""Local attention, Luong et al. 2015 sec. 3.2: attend to a window [p_t - D, p_t + D] around an
aligned source position p_t, predicted monotonically (local-m) or by the decoder state (local-p).

Same stateless interface and dtype rules as `nmt.models.attention` (B batch, S source length,
T target steps); the score inside the window is one of the global Luong scores (`SCORES`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nmt.config import AttentionConfig, ConfigError
from nmt.models.attention import SCORES, Attention, AttentionMacs, build_score, masked_normalize


class LocalAttention(Attention):
    """Luong et al. 2015 sec. 3.2 local attention around an aligned position p_t (B,T).

    Alignment = softmax (or the `normalizer`) of `align.score` over the positions s with
    |s - p_t| <= D that are not padding (eq. 7 restricted to the window), zero elsewhere; optionally multiplied by the
    Gaussian exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D/2 (eq. 10). Positions are 0-based.
    Subclasses define `predict_position`.
    """

    @classmethod
    def check(cls, cfg: AttentionConfig, max_len: int) -> None:
        super().check(cfg, max_len)
        if cfg.window < 1:
            raise ConfigError(
                f"attention.window={cfg.window} must be >= 1 for local attention (D >= 1)"
            )

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        score = SCORES[cfg.score].macs(cfg, query_size, key_size)  # only 2D+1 positions read
        return AttentionMacs(score.per_source, score.per_target, score.per_pair, 2 * cfg.window + 1)

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

    def distribution(self, query: Tensor, keys: Tensor, mask: Tensor, step: int = 0) -> Tensor:
        """Float32 weights (B,T,S), zero outside [p_t - D, p_t + D]."""
        S = keys.size(1)
        p_t = self.predict_position(query, mask, step)  # (B,T) float32
        positions = torch.arange(S, device=keys.device, dtype=torch.float32)  # (S,)
        dist = positions[None, None, :] - p_t[:, :, None]  # (1,1,S) - (B,T,1) -> (B,T,S)
        in_window = dist.abs() <= self.window  # (B,T,S) Luong 2015, sec. 3.2: window [p_t-D, p_t+D]
        allowed = in_window & mask[:, None, :]  # (B,T,S) inside the window and not padding
        scores = self.align.score(query, keys)  # (B,T,S)
        weights = masked_normalize(scores, allowed, self.normalizer)  # (B,T,S) eq. 7 in the window
        if self.gaussian:
            # Luong 2015, eq. 10: Gaussian centred on p_t, sigma = D/2
            weights = weights * torch.exp(-dist.pow(2) / (2 * self.sigma**2))  # (B,T,S)
        return weights


class LocalMAttention(LocalAttention):
    """Local-m (monotonic) attention, Luong et al. 2015 sec. 3.2: p_t = t.

    p_t = step + i for query[:, i], clipped per sentence to [0, S_b - 1] (S_b = mask.sum(-1)).
    `gaussian=None` follows the paper: local-m uses a_t of eq. 7 in the window, NO Gaussian.
    """

    name = "local_m"

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
        return cls(build_score(cfg.score, query_size, key_size), cfg.window, cfg.gaussian)

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

    name = "local_p"

    @classmethod
    def from_config(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> Attention:
        align = build_score(cfg.score, query_size, key_size)
        return cls(align, query_size, cfg.window, cfg.gaussian)

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        m = super().macs(cfg, query_size, key_size)
        p_t = query_size * query_size + query_size  # v_p^T tanh(W_p h_t)
        return AttentionMacs(m.per_source, m.per_target + p_t, m.per_pair, m.window)

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
