"""Padded tensor batches and length-bucketed batch samplers.

Framing: source = x + EOS; decoder input = BOS + y; decoder output = y + EOS; PAD = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nmt.vocab import BOS, EOS, PAD


@dataclass
class Batch:
    """One padded batch; `tgt_in`/`tgt_out` are None for source-only (translation) batches."""

    src: torch.Tensor  # (B, S) long: source ids + EOS, PAD-padded
    src_lens: torch.Tensor  # (B,) long: lengths including EOS
    tgt_in: torch.Tensor | None  # (B, T) long: BOS + y
    tgt_out: torch.Tensor | None  # (B, T) long: y + EOS
    indices: torch.Tensor  # (B,) long: positions of the examples in their split
    n_tgt_tokens: int  # non-PAD tokens in tgt_out
    n_src_tokens: int  # non-PAD tokens in src

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with its tensors on `device`."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Batch(
            src=move(self.src),  # type: ignore[arg-type]
            src_lens=move(self.src_lens),  # type: ignore[arg-type]
            tgt_in=move(self.tgt_in),
            tgt_out=move(self.tgt_out),
            indices=move(self.indices),  # type: ignore[arg-type]
            n_tgt_tokens=self.n_tgt_tokens,
            n_src_tokens=self.n_src_tokens,
        )

    def pin_memory(self) -> Batch:
        """The same batch in pinned host memory (for asynchronous copies to the GPU)."""

        def pin(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.pin_memory()

        return Batch(
            src=pin(self.src),  # type: ignore[arg-type]
            src_lens=pin(self.src_lens),  # type: ignore[arg-type]
            tgt_in=pin(self.tgt_in),
            tgt_out=pin(self.tgt_out),
            indices=pin(self.indices),  # type: ignore[arg-type]
            n_tgt_tokens=self.n_tgt_tokens,
            n_src_tokens=self.n_src_tokens,
        )


def _pad(seqs: Sequence[Sequence[int]], prefix: int | None, suffix: int | None) -> np.ndarray:
    """Stack sequences into a PAD-filled (B, max_len + framing) int64 array."""
    extra = (prefix is not None) + (suffix is not None)
    lengths = [len(s) for s in seqs]
    out = np.full((len(seqs), max(lengths, default=0) + extra), PAD, dtype=np.int64)
    start = 1 if prefix is not None else 0
    if prefix is not None:
        out[:, 0] = prefix
    for row, (seq, n) in enumerate(zip(seqs, lengths)):
        out[row, start : start + n] = seq
        if suffix is not None:
            out[row, start + n] = suffix
    return out


def collate(
    src_ids: Sequence[Sequence[int]],
    tgt_ids: Sequence[Sequence[int]] | None,
    indices: Sequence[int] | np.ndarray,
) -> Batch:
    """Frame and pad raw id sequences (no BOS/EOS in the inputs) into a `Batch`."""
    if len(src_ids) != len(indices) or (tgt_ids is not None and len(tgt_ids) != len(src_ids)):
        raise ValueError("collate: src_ids, tgt_ids and indices must have the same length")
    src = _pad(src_ids, None, EOS)
    src_lens = np.array([len(s) + 1 for s in src_ids], dtype=np.int64)
    tgt_in = tgt_out = None
    n_tgt = 0
    if tgt_ids is not None:
        tgt_in = torch.from_numpy(_pad(tgt_ids, BOS, None))
        tgt_out = torch.from_numpy(_pad(tgt_ids, None, EOS))
        n_tgt = int(sum(len(t) + 1 for t in tgt_ids))
    return Batch(
        src=torch.from_numpy(src),
        src_lens=torch.from_numpy(src_lens),
        tgt_in=tgt_in,
        tgt_out=tgt_out,
        indices=torch.as_tensor(np.asarray(indices, dtype=np.int64)),
        n_tgt_tokens=n_tgt,
        n_src_tokens=int(src_lens.sum()),
    )


def _cut(
    order: np.ndarray, src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int
) -> list[np.ndarray]:
    """Greedily cut `order` into batches with size * max(padded src/tgt length) <= max_tokens."""
    cost = np.maximum(src_lens[order], tgt_lens[order]).astype(np.int64) + 1  # EOS / BOS
    cost_list = cost.tolist()
    bounds = [0]
    width = 0
    size = 0
    for pos, c in enumerate(cost_list):
        new_width = max(width, c)
        if size > 0 and (size + 1) * new_width > max_tokens:
            bounds.append(pos)
            width, size = c, 1
        else:
            width, size = new_width, size + 1
    bounds.append(len(cost_list))
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class TokenBatchSampler:
    """Length-bucketed batches of at most `max_tokens` padded tokens per side.

    Examples are sorted by (target length, source length) with a random tie-break, cut greedily
    so that `batch_size * max(padded src len, padded tgt len) <= max_tokens` (padded = +1 for
    EOS/BOS; an example longer than that forms a batch of its own), and the batch order is
    shuffled. With `shuffle=True` everything random comes from `default_rng((seed, epoch))`,
    so batches are deterministic per (seed, epoch) and differ between epochs.
    """

    def __init__(
        self, src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, shuffle: bool, seed: int
    ) -> None:
        """Lengths are raw token counts without BOS/EOS."""
        self.src_lens = np.asarray(src_lens, dtype=np.int64)
        self.tgt_lens = np.asarray(tgt_lens, dtype=np.int64)
        if self.src_lens.shape != self.tgt_lens.shape:
            raise ValueError("src_lens and tgt_lens must have the same shape")
        if max_tokens < 1:
            raise ValueError(f"max_tokens={max_tokens} must be >= 1")
        self.max_tokens = int(max_tokens)
        self.shuffle = shuffle
        self.seed = int(seed)
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def __len__(self) -> int:
        """Number of batches in epoch 0 (other epochs may differ by a few)."""
        return self.num_batches(0)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The index arrays of every batch of `epoch`; each index appears exactly once."""
        key = epoch if self.shuffle else 0
        if self._cache is not None and self._cache[0] == key:
            return list(self._cache[1])
        n = len(self.src_lens)
        if self.shuffle:
            rng = np.random.default_rng((self.seed, epoch))
            tie = rng.permutation(n)
            order = np.lexsort((tie, self.src_lens, self.tgt_lens))
        else:
            rng = None
            order = np.lexsort((np.arange(n), self.src_lens, self.tgt_lens))
        out = _cut(order, self.src_lens, self.tgt_lens, self.max_tokens)
        if rng is not None:
            out = [out[i] for i in rng.permutation(len(out))]
        self._cache = (key, out)
        return list(out)

    def num_batches(self, epoch: int) -> int:
        """Number of batches in `epoch`."""
        return len(self.batches(epoch))


def shard_batches(batches: list[np.ndarray], rank: int, world_size: int) -> list[np.ndarray]:
    """Batches for one of `world_size` data-parallel ranks; every rank gets the same count.

    Batches beyond the largest multiple of `world_size` are dropped (at most world_size - 1).
    """
    usable = len(batches) - len(batches) % world_size
    return batches[rank:usable:world_size]


def fixed_batches(
    lengths: np.ndarray, max_sentences: int, max_tokens: int | None = None
) -> list[np.ndarray]:
    """Decoding batches: indices sorted by source length (longest first), in chunks.

    Each batch has at most `max_sentences` examples and, if given, at most `max_tokens`
    padded source tokens. Use `Batch.indices` to put results back into input order.
    """
    if max_sentences < 1:
        raise ValueError(f"max_sentences={max_sentences} must be >= 1")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        stop = min(start + max_sentences, len(order))
        if max_tokens is not None:
            width = int(lengths[order[start]]) + 1  # longest first: the first sets the width
            stop = min(stop, start + max(1, max_tokens // width))
        out.append(order[start:stop])
        start = stop
    return out
