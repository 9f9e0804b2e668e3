"""Hard attention: read ONE source position per target step, for any RNN mechanism.

`attention.hard` wraps the mechanism `attention.type` names (global or local, any normaliser):
the mechanism's weights are the distribution a(t, .) over source positions, and the context is
the encoder state of one position s_t drawn from it (Xu et al. 2015, "Show, Attend and Tell",
sec. 4.1: "stochastic hard attention"). Same stateless interface as `nmt.models.attention`.

|  attention.hard  | training                                                  | paper                 |
|------------------|-----------------------------------------------------------|-----------------------|
|  none            | soft: the weighted average of every position (default)   |                       |
|  reinforce       | s_t ~ a(t, .); REINFORCE with a moving-average baseline   | Xu 2015, eq. 11-12    |
|                  | and an entropy bonus (`nmt.loss.reinforce_loss`)          |                       |
|  gumbel          | straight-through Gumbel-softmax: the forward pass reads   | Jang et al. 2017,     |
|                  | argmax_s (log a + g_s), the backward pass differentiates  | sec. 2-3 (ST          |
|                  | softmax((log a + g) / tau)                                | Gumbel-softmax)       |

At inference (`model.eval()`) `attention.hard_inference` picks the argmax position (default:
one-hot rows, one position read per step) or `soft`, the expectation the sample estimates (the
soft mechanism's own weights), to show the gap between them. The returned weights are one-hot
rows wherever a single position is read, so heatmaps, statistics (positions read = 1) and
nmt-align see exactly what the model read.

Training can mix in soft steps: `attention.soft_mix` is the probability that a step reads the
expectation instead of a sample (Xu et al. 2015, sec. 4.1, use 0.5), and with
`attention.soft_mix_anneal` = f that probability falls linearly to 0 over the first f of the
training budget (the trainer calls `set_progress`): a soft-to-hard curriculum whose second part
trains the model exactly as it is used, one position per step.

Local-p weights carry the Gaussian of Luong 2015 eq. 10 and do not sum to 1; hard attention
samples from them renormalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HARD = ("none", "reinforce", "gumbel")  # attention.hard
HARD_INFERENCE = ("argmax", "soft")  # attention.hard_inference
REWARDS = ("step", "sentence")  # attention.reward (see nmt.loss.reinforce_loss)


def _normalised(weights: Tensor, mask: Tensor) -> Tensor:
    """Rows of `weights` (B,T,S) divided by their sum; a row with no mass (never expected: every
    source has EOS and every window a real position) becomes uniform over its real positions."""
    total = weights.sum(-1, keepdim=True)  # (B,T,1)
    fallback = mask[:, None, :].expand_as(weights).float()  # (B,T,S)
    weights = torch.where(total > 0, weights, fallback)
    return weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)  # (B,T,S) rows sum to 1


def _one_hot(index: Tensor, S: int) -> Tensor:
    """(B,T) positions -> (B,T,S) float32 one-hot rows."""
    return F.one_hot(index, S).float()


class HardAttention(nn.Module):
    """One source position per step, drawn from the wrapped mechanism's distribution.

    With `estimator="reinforce"` each training forward appends (log a(t, s_t), H[a(t, .)]) of
    every step, both (B,T), to `self.trace`; `nmt.loss.batch_loss` takes them (`take_trace`)
    and adds the REINFORCE and entropy terms; `baseline` is the moving average of the reward
    (a buffer, so it is saved with the model and an exact resume continues it).
    """

    def __init__(
        self,
        inner: nn.Module,
        estimator: str,
        inference: str = "argmax",
        tau: float = 1.0,
        reward: str = "step",
        soft_mix: float = 0.0,
        anneal: float = 0.0,
        entropy_bonus: float = 0.01,
        baseline_decay: float = 0.9,
    ) -> None:
        super().__init__()
        if estimator not in HARD[1:]:
            raise ValueError(f"hard attention estimator {estimator!r}: one of {HARD[1:]}")
        if inference not in HARD_INFERENCE:
            raise ValueError(f"hard attention inference {inference!r}: one of {HARD_INFERENCE}")
        self.inner = inner  # the mechanism: its `distribution` is a(t, .)
        self.estimator = estimator
        self.inference = inference
        self.tau = tau  # Gumbel-softmax temperature
        if reward not in REWARDS:
            raise ValueError(f"hard attention reward {reward!r}: one of {REWARDS}")
        self.reward = reward  # what REINFORCE credits a sampled position with
        self.soft_mix = soft_mix  # P(a training step reads the expectation instead of a sample)
        self.anneal = anneal  # share of the budget over which that falls linearly to 0; 0: never
        self.mix_now = soft_mix  # the probability now (`set_progress`)
        self.entropy_bonus = entropy_bonus  # lambda_e of Xu et al. 2015, eq. 12
        self.baseline_decay = baseline_decay  # b_k = decay b_{k-1} + (1 - decay) r_k (Xu: 0.9)
        self.register_buffer("baseline", torch.full((), float("nan")))  # NaN until the first batch
        self.trace: list[tuple[Tensor, Tensor]] = []

    @property
    def query(self) -> str:
        return self.inner.query  # the decoder layout is the mechanism's

    def project_keys(self, keys: Tensor) -> Tensor:
        return self.inner.project_keys(keys)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, step: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Context (B,T,Hv): the encoder state of the position read; weights (B,T,S) float32:
        one-hot rows (or, at inference with `hard_inference=soft`, the soft weights)."""
        p = _normalised(self.inner.distribution(query, keys, mask, step), mask)  # (B,T,S)
        S = p.size(-1)
        if not self.training:
            if self.inference == "soft":
                return p.to(values.dtype) @ values, p  # the expectation over positions
            weights = _one_hot(p.argmax(-1), S)  # (B,T,S) the most likely position
            return weights.to(values.dtype) @ values, weights
        log_p = p.clamp(min=1e-30).log().masked_fill(p == 0, float("-inf"))  # (B,T,S)
        B, T = p.shape[:2]
        # Xu et al. 2015, sec. 4.1: "with probability 0.5 [we] set the sampled attention location
        # to its expected value"; those steps are soft (their context carries the gradient)
        soft = torch.rand(B, T, 1, device=p.device) < self.mix_now if self.mix_now > 0 else None
        if self.estimator == "gumbel":
            u = torch.rand_like(p).clamp(1e-10, 1.0 - 1e-7)
            g = -torch.log(-torch.log(u))  # (B,T,S) Gumbel(0, 1) noise
            y_soft = torch.softmax((log_p + g) / self.tau, dim=-1)  # Jang et al. 2017, eq. 1
            hard = _one_hot(y_soft.argmax(-1), S)  # (B,T,S) the sample, argmax of log a + g
            y = hard - y_soft.detach() + y_soft  # straight-through: forward hard, backward soft
            if soft is not None:
                y, hard = torch.where(soft, p, y), torch.where(soft, p, hard)
            return y.to(values.dtype) @ values, hard
        index = torch.multinomial(p.detach().reshape(B * T, S), 1).view(B, T)  # s_t ~ a(t, .)
        weights = _one_hot(index, S)  # (B,T,S)
        log_a = log_p.gather(-1, index[..., None]).squeeze(-1)  # (B,T) log a(t, s_t)
        entropy = -(p * log_p.masked_fill(p == 0, 0.0)).sum(-1)  # (B,T) H[a(t, .)]
        if soft is not None:  # a soft step is trained by its context, not by REINFORCE
            weights = torch.where(soft, p, weights)
            log_a = log_a.masked_fill(soft[..., 0], 0.0)
        self.trace.append((log_a, entropy))
        return weights.to(values.dtype) @ values, weights

    def set_progress(self, used: float) -> None:
        """The trainer's budget spent (0..1): the soft share falls from `soft_mix` to 0 over the
        first `anneal` of it (a soft-to-hard curriculum), or stays `soft_mix`."""
        if self.anneal > 0:
            self.mix_now = self.soft_mix * max(0.0, 1.0 - used / self.anneal)

    def take_trace(self) -> tuple[Tensor, Tensor] | None:
        """(log a(t, s_t), entropy) (B,T) of the last training forward, steps concatenated; the
        trace is cleared. None when nothing was sampled."""
        if not self.trace:
            return None
        log_a = torch.cat([t[0] for t in self.trace], dim=1)  # (B,T)
        entropy = torch.cat([t[1] for t in self.trace], dim=1)  # (B,T)
        self.trace = []
        return log_a, entropy

    @torch.no_grad()
    def update_baseline(self, reward: Tensor) -> Tensor:
        """The baseline to subtract from this batch's rewards (B,) (the moving average so far;
        the batch mean for the first batch), then fold the batch mean in (Xu et al. 2015)."""
        mean = reward.mean()
        b = mean if torch.isnan(self.baseline) else self.baseline.clone()
        self.baseline.copy_(self.baseline_decay * b + (1 - self.baseline_decay) * mean)
        return b
