"""Dropout (Srivastava et al. 2014) with a cheap mask on CPU.

`F.dropout` on CPU draws one Bernoulli sample per element, which costs more than the matmuls of
a small model; a boolean mask applied with `torch.where` costs several times a vectorised
multiply. Here each element gets 8 random bits (`torch.randint` over int64 words viewed as
int8), so the drop probability is p rounded to a multiple of 1/256 (`effective_rate`: 0.1 ->
0.1016), and the mask is built as a float tensor of 0 and 1/(1 - p) with vectorised ops
(int8 -> float conversion, shift, clamp, scale), so forward and backward are one multiply each.
The scale uses the rounded p, so E[dropout(x)] = x exactly. Other devices use `F.dropout`. Same
RNG (torch's global generator), so seeding stays reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = 256  # random levels per element: 8 bits


def effective_rate(p: float) -> float:
    """The drop probability the CPU mask realises: p rounded to a multiple of 1/256."""
    return round(p * LEVELS) / LEVELS


def keep_scale(
    shape: torch.Size | tuple[int, ...],
    p: float,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Float mask of `shape`: 1 / (1 - p') with probability 1 - p', else 0; p' = effective_rate(p)."""
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=device)
    bits = words.view(torch.int8)[:n].view(shape)  # uniform on [-128, 127]
    rate = effective_rate(p)
    drop = round(rate * LEVELS)  # kept: bits >= -128 + drop
    # on integers, clamp(bits - (-128 + drop) + 1, 0, 1) is the step 1[bits >= -128 + drop]
    mask = bits.to(dtype).sub_(drop - LEVELS // 2 - 1).clamp_(0.0, 1.0)
    return mask.mul_(1.0 / (1.0 - rate))


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> Tensor:
    """Boolean mask of `shape`, True with probability 1 - effective_rate(p)."""
    return keep_scale(shape, p, device) != 0


class _MaskedScale(torch.autograd.Function):
    """y = x * m, m = keep / (1 - p) as a float mask; saves only m for backward."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad: Tensor):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1 / (1 - p)."""
    if not training or p <= 0.0:
        return x
    rate = effective_rate(p)
    if x.device.type != "cpu" or rate >= 1.0:
        return F.dropout(x, p, training=True)
    if rate == 0.0:
        return x
    return _MaskedScale.apply(x, keep_scale(x.shape, p, x.device, x.dtype))


class Dropout(nn.Module):
    """Drop-in for `nn.Dropout` using `dropout` above."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
