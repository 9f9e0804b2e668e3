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

import torch
import torch.nn.functional as F
from torch import Tensor


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, eps: float, chunk: int, dtype):
        # hidden (N, H); weight (V, H); bias (V,) or None; target (N,)
        N, V = hidden.size(0), weight.size(0)
        needs_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        w = weight.to(dtype)  # (V, H)
        h = hidden.to(dtype)  # (N, H)
        b = None if bias is None else bias.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if needs_grad else None
        grad_w = (
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            if needs_grad
            else None
        )
        grad_b = None if bias is None or not needs_grad else torch.zeros(V, device=bias.device)
        for i in range(0, N, chunk):
            x, y = h[i : i + chunk], target[i : i + chunk]  # (n, H), (n,)
            z = F.linear(x, w, b).float()  # (n, V) logits
            z_y = z.gather(1, y[:, None]).squeeze(1)  # (n,)
            z_mean = z.mean(-1)  # (n,)
            m = z.amax(-1, keepdim=True)  # (n, 1)
            e = z.sub_(m).exp_()  # (n, V) exp(z - max), in place
            s = e.sum(-1, keepdim=True)  # (n, 1)
            lse = (m + s.log()).squeeze(1)  # (n,)
            total += (lse - (1.0 - eps) * z_y - eps * z_mean).sum()
            if not needs_grad:
                continue
            g = e.div_(s).sub_(eps / V)  # (n, V) softmax(z) - eps / V
            g.scatter_add_(1, y[:, None], g.new_full((y.numel(), 1), -(1.0 - eps)))  # - (1-eps) 1_y
            gd = g.to(dtype)
            grad_h[i : i + chunk] = gd @ w  # (n, H)
            grad_w += gd.t() @ x  # (V, H)
            if grad_b is not None:
                grad_b += g.sum(0)
        if needs_grad:
            ctx.save_for_backward(grad_h, grad_w, grad_b)
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
        )


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    label_smoothing: float = 0.0,
    dtype: torch.dtype | None = None,
    chunk: int = 256,
) -> Tensor:
    """Summed label-smoothed cross-entropy of softmax(hidden W^T + b) against `target`.

    hidden (N, H) the decoder outputs of the positions to score; weight (V, H), bias (V,) or
    None (an `nn.Linear`'s); target (N,). `dtype` is the matmul dtype (default: hidden's).
    Returns a float32 scalar; differentiable w.r.t. hidden, weight and bias.
    """
    if hidden.dim() != 2 or target.shape != hidden.shape[:1]:
        raise ValueError(
            f"expected hidden (N, H) and target (N,), got {tuple(hidden.shape)} and {tuple(target.shape)}"
        )
    with torch.autocast(hidden.device.type, enabled=False):
        return _LinearCrossEntropy.apply(
            hidden, weight, bias, target, float(label_smoothing), chunk, dtype or hidden.dtype
        )
