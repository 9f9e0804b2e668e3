"""Output projection and label-smoothed cross-entropy in one pass over row chunks.

The usual path materialises logits (N, V), their float32 copy, log-probabilities and several
gradients of the same size; on a CPU these memory-bound passes cost more than the output matmul.
`linear_cross_entropy` instead takes the decoder outputs of the real (non-padding) target
positions and, chunk by chunk of rows, computes the logits, the loss and, when gradients are
needed, d loss / d inputs and d loss / d weights, so no (N, V) tensor outlives one chunk.
The softmax is always computed in float32; the matmuls run in `dtype` (bf16 under autocast).

Label smoothing as in Szegedy et al. 2016 (and PyTorch's `cross_entropy`): the target
distribution is q = (1 - eps) one_hot(y) + eps / V, so per row
    loss = logsumexp(z) - (1 - eps) z_y - eps * mean(z),   d loss / d z = softmax(z) - q.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from nmt.data.arrays import TokenArray
from nmt.data.batching import Batch
from nmt.data.tokenizer import PAD
from nmt.models.hard_attention import HardAttention
from nmt.runtime import Precision, autocast

# Rows per chunk on a CPU. Every chunk reads W' (V x H') twice and reads and writes the float32
# weight gradient (V x H') once, 26 MB at V = 8,000; fewer, larger chunks pay that less often,
# while a chunk's (n, V) logits (32 MB at 1,024 rows) are one reused buffer. Forward and backward
# of N = 3,560 rows, H = 256, V = 8,000, 2 threads, on a 2-core AVX-512 EPYC (medians): fp32
# 256 rows 305 ms, 512 285, 1,024 271, 2,048 276; bf16 159, 151, 148, 162.
CPU_CHUNK = 1024


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, eps: float, chunk: int, dtype, rows):
        # hidden (N, H); weight (V, H); bias (V,) or None; target (N,); rows (N,) or None
        (N, H), V = hidden.shape, weight.size(0)
        needs_grad = any(ctx.needs_input_grad[:3])
        mixed = dtype != torch.float32
        # The bias rides in the matmuls as one more column: x' = [x, 1], W' = [W, b], so
        # z = x' W'^T and the bias gradient is the last column of the weight gradient.
        # Zero columns pad H' to a multiple of 16 (64-byte float32 rows): with H' = 257 a chunk's
        # three matmuls took 36.7 ms, with 272 30.3 (264: 29.6) on a 2-core AVX2 EPYC (256
        # rows, V = 8,000, 2 threads, medians of 5).
        cols = H + (bias is not None)
        cols += -cols % 16
        w = weight.new_empty(V, cols, dtype=dtype)  # (V, H') W'
        w[:, :H] = weight
        w[:, H:] = 0.0
        h = hidden.new_empty(N, cols, dtype=dtype)  # (N, H') x'
        h[:, :H] = hidden
        h[:, H:] = 0.0
        if bias is not None:
            w[:, H] = bias
            h[:, H] = 1.0
        w_mean = w.float().mean(0)  # (H',) mean_v z_v = x' . mean_v W'_v
        # Buffers reused by every chunk: a fresh multi-MB tensor per chunk costs page faults.
        n = min(chunk, N)
        z_buf = hidden.new_empty(n, V, dtype=torch.float32)  # logits, then softmax, then grads
        low_buf = hidden.new_empty(n, V, dtype=dtype) if mixed else None  # the same in `dtype`
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        if needs_grad:
            grad_h = hidden.new_empty(N, H, dtype=dtype)
            grad_w = torch.zeros(V, cols, dtype=torch.float32, device=weight.device)
            grad_w_part = weight.new_empty(V, cols, dtype=dtype) if mixed else None
        for i in range(0, N, chunk):
            x, y = h[i : i + chunk], target[i : i + chunk]  # (n, H'), (n,)
            n = x.size(0)
            z = z_buf[:n]  # (n, V) float32
            if mixed:
                torch.mm(x, w.t(), out=low_buf[:n])  # (n, V) logits in `dtype`
                z.copy_(low_buf[:n])
            else:
                torch.mm(x, w.t(), out=z)
            z_y = z.gather(1, y[:, None]).squeeze(1)  # (n,)
            z_mean = x.float() @ w_mean  # (n,)
            p = torch.softmax(z, dim=-1, out=z)  # (n, V) in place: one fused pass per row
            p_y = p.gather(1, y[:, None]).squeeze(1)  # (n,)
            nll = -p_y.log()  # (n,) -log p(y) = lse - z_y
            tiny = p_y < 1e-30  # underflow: recompute those rows' log-sum-exp from their logits
            if bool(tiny.any()):
                z_bad = (x[tiny] @ w.t()).float()  # (k, V)
                nll[tiny] = torch.logsumexp(z_bad, dim=-1) - z_y[tiny]
            lse = nll + z_y
            total += (lse - (1.0 - eps) * z_y - eps * z_mean).sum()
            if rows is not None:
                rows[i : i + n] = nll  # unsmoothed -log p(y) of each row
            if not needs_grad:
                continue
            # d loss / d z = softmax(z) - (1-eps) 1_y - eps / V; the constant eps / V is applied
            # to the (N, H) and (V, H') results below instead of to every logit
            g = p.scatter_add_(1, y[:, None], p.new_full((n, 1), -(1.0 - eps)))  # (n, V)
            if mixed:
                g = low_buf[:n].copy_(g)
                torch.mm(g, w[:, :H], out=grad_h[i : i + n])  # (n, H)
                grad_w += torch.mm(g.t(), x, out=grad_w_part)  # (V, H')
            else:
                torch.mm(g, w[:, :H], out=grad_h[i : i + n])
                grad_w.addmm_(g.t(), x)
        grad_b = None
        if needs_grad:
            grad_h -= (eps / V) * w[:, :H].float().sum(0).to(dtype)  # - eps/V sum_v W_v
            grad_w -= (eps / V) * h.float().sum(0)  # - eps/V sum_n x'_n, every row
            if bias is not None:
                grad_b = grad_w[:, H].contiguous()
            grad_w = grad_w[:, :H]  # without the bias and padding columns
            ctx.save_for_backward(grad_h.to(hidden.dtype), grad_w, grad_b)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        return (
            grad_h * grad_out.to(grad_h.dtype),
            grad_w * grad_out,
            None if grad_b is None else grad_b * grad_out,
            None,
            None,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    label_smoothing: float = 0.0,
    dtype: torch.dtype | None = None,
    chunk: int | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    """Summed label-smoothed cross-entropy of softmax(hidden W^T + b) against `target`.

    hidden (N, H) the decoder outputs of the positions to score; weight (V, H), bias (V,) or
    None (an `nn.Linear`'s); target (N,). `dtype` is the matmul dtype (default: hidden's).
    Returns a float32 scalar; differentiable w.r.t. hidden, weight and bias. `rows`, a float32
    (N,) tensor, receives each row's unsmoothed -log p(target) (not differentiable). `chunk`
    rows at a time (default: `CPU_CHUNK` on a CPU; 8,192 on a GPU, where every chunk costs
    kernel launches and one device sync).
    """
    if chunk is None:
        chunk = CPU_CHUNK if hidden.device.type == "cpu" else 8192
    if hidden.dim() != 2 or target.shape != hidden.shape[:1]:
        raise ValueError(
            f"expected hidden (N, H) and target (N,), got {tuple(hidden.shape)} and {tuple(target.shape)}"
        )
    with torch.autocast(hidden.device.type, enabled=False):
        return _LinearCrossEntropy.apply(
            hidden, weight, bias, target, float(label_smoothing), chunk, dtype or hidden.dtype, rows
        )


@dataclass
class Guide:
    """Guided alignment: which attention is pulled toward which links, and how hard."""

    links: TokenArray  # per training pair: flat (source piece, target piece) pairs
    weight: float  # lambda
    layer: int = -1  # Transformer: cross-attention layer
    head: int = 0  # Transformer: head
    # the forward's arguments for that attention (`nmt.models.guided_attention_kwargs`)
    model_kwargs: dict[str, int] = field(default_factory=dict)

    def attention(self, attention: Tensor) -> Tensor:
        """The guided distribution (B, T, S) of the model's attention: the RNN's (B, T, S) as it
        is, of the Transformer's (B, T, L, heads, S) one layer's one head."""
        return attention if attention.dim() == 3 else attention[:, :, self.layer, self.head]

    def gold(self, batch: Batch, shape: torch.Size, device: torch.device) -> Tensor:
        """(B, T, S) 0/1 matrix of the batch's links; row t is target piece t, column s source
        piece s (the EOS row and column never have links)."""
        gold = torch.zeros(shape, device=device)
        for k, i in enumerate(batch.indices.tolist()):
            pairs = torch.from_numpy(np.asarray(self.links[i], dtype=np.int64)).view(-1, 2)
            gold[k, pairs[:, 1].to(device), pairs[:, 0].to(device)] = 1.0
        return gold


def guided_alignment_loss(attention: Tensor, gold: Tensor) -> Tensor:
    """Summed over target pieces that have links: -sum_s p(s|t) log a(t, s), p uniform over the
    source pieces linked to t (Garg et al. 2019, eq. 5; Liu et al. 2016, sec. 3.2).

    attention (B, T, S) rows of an attention distribution; gold (B, T, S) 0/1. Weights that are
    exactly 0 (padding, outside a local window) are floored at 1e-9 before the log."""
    links = gold.sum(-1)  # (B, T)
    p = gold / links.clamp(min=1.0).unsqueeze(-1)  # (B, T, S)
    nll = -(p * attention.float().clamp(min=1e-9).log()).sum(-1)  # (B, T)
    return nll[links > 0].sum()


def reinforce_loss(
    attention: HardAttention, log_a: Tensor, entropy: Tensor, nll: Tensor, real: Tensor
) -> Tensor:
    """REINFORCE for hard attention (Xu et al. 2015, eq. 11-12), summed over real target steps:
    -sum_t [(r_t - b) log a(t, s_t) + lambda_e H[a(t, .)]].

    log_a, entropy (B, T) from `HardAttention.take_trace`; nll (B, T) the unsmoothed token
    -log p(y_t) (no gradient); real (B, T) bool. `attention.reward`: "sentence" credits every
    step with the sentence's log p(y | s) as Xu et al. do, here per token (log p(y | s) / |y|,
    so one moving-average baseline b fits sentences of every length); "step" credits step t with
    log p(y_t | ...) of the word it predicts: myopic, but far less noisy (the copy and reversal
    tests learn in 260-400 steps with it, not with "sentence"). b is the moving average of the
    per-token sentence reward before this batch."""
    real_f = real.float()
    sentence = -(nll * real_f).sum(1) / real_f.sum(1).clamp(min=1.0)  # (B,) mean log p(y_t)
    baseline = attention.update_baseline(sentence)
    reward = -nll if attention.reward == "step" else sentence[:, None].expand_as(nll)  # (B, T)
    advantage = (reward - baseline).detach()  # (B, T)
    per_step = advantage * log_a + attention.entropy_bonus * entropy  # (B, T)
    return -(per_step * real_f).sum()


class BatchLoss(NamedTuple):
    """A batch's training objective and its terms, each summed over the batch (float32)."""

    total: Tensor  # what is minimised: cross_entropy + guided (weighted) + REINFORCE terms
    cross_entropy: Tensor  # the label-smoothed token cross-entropy alone (what is logged)
    guided: Tensor | None  # the guided alignment loss before its weight, when a guide is given


def batch_loss(
    model: nn.Module,
    output: nn.Linear,
    batch: Batch,
    label_smoothing: float,
    device: torch.device,
    precision: Precision,
    guide: Guide | None = None,
) -> BatchLoss:
    """Summed token cross-entropy (float32) of a batch under teacher forcing, plus the guided
    alignment loss times its weight when a `guide` is given, plus the REINFORCE terms of hard
    attention that sampled positions in this forward (`reinforce_loss`).

    The model returns pre-softmax decoder states (`project=False`); the output projection and
    the loss run on the real target positions only, fused and in row chunks, so no (B, T, V)
    logits tensor is built.
    """
    with autocast(device, precision):
        hidden, attention = model(
            batch.src,
            batch.src_lens,
            batch.tgt_in,
            return_attention=guide is not None,
            project=False,
            **(guide.model_kwargs if guide is not None else {}),
        )  # (B, T, H), (B, T, *E, S) or None
    real = batch.tgt_out != PAD  # (B, T)
    sampled = [(m, m.take_trace()) for m in model.modules() if isinstance(m, HardAttention)]
    sampled = [(m, trace) for m, trace in sampled if trace is not None]
    rows = torch.empty(int(real.sum()), device=hidden.device) if sampled else None  # (N,)
    cross_entropy = linear_cross_entropy(
        hidden[real],  # (N, H)
        output.weight,
        output.bias,
        batch.tgt_out[real],  # (N,)
        label_smoothing,
        dtype=torch.bfloat16 if precision.name == "bf16" else hidden.dtype,
        rows=rows,
    )
    total, guided = cross_entropy, None
    for module, (log_a, entropy) in sampled:  # hard attention trained by REINFORCE
        nll = torch.zeros(real.shape, device=rows.device).masked_scatter(real, rows)  # (B, T)
        total = total + reinforce_loss(module, log_a, entropy, nll, real)
    if guide is not None and guide.weight > 0:
        att = guide.attention(attention)  # (B, T, S)
        guided = guided_alignment_loss(att, guide.gold(batch, att.shape, att.device))
        total = total + guide.weight * guided
    return BatchLoss(total, cross_entropy, guided)
