"""The output projection over the whole vocabulary or a shortlist of it (`nmt.shortlist`)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def vocab_logits(layer: nn.Linear, h: Tensor, vocab: Tensor | None = None) -> Tensor:
    """`layer(h)`: logits (N, V); with `vocab` (M,) ids, only those rows of the projection, (N, M)
    (column j scores id vocab[j]). A quantised (int8) layer has no rows to pick: refused."""
    if vocab is None:
        return layer(h)
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"a vocabulary shortlist needs a float output layer, not {type(layer)}")
    bias = None if layer.bias is None else layer.bias.index_select(0, vocab)
    return F.linear(h, layer.weight.index_select(0, vocab), bias)
