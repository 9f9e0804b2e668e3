"""Compact storage for many variable-length token-id sequences."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np


class TokenArray:
    """N id sequences stored as one flat int32 array plus N+1 int64 offsets."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        """Wrap existing arrays; `offsets[0] == 0` and `offsets[-1] == len(data)`."""
        self.data = np.ascontiguousarray(data, dtype=np.int32)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
            raise ValueError("offsets must be 1-D and start at 0")
        if self.offsets[-1] != len(self.data):
            raise ValueError(f"offsets end at {self.offsets[-1]} but data has {len(self.data)} ids")

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]]) -> TokenArray:
        """Build from a list of id lists (e.g. one encoding chunk)."""
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        total = int(lengths.sum())
        data = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=total)
        return cls(data, np.concatenate(([0], np.cumsum(lengths))))

    @classmethod
    def concat(cls, parts: Iterable[TokenArray]) -> TokenArray:
        """Join several arrays end to end."""
        parts = list(parts)
        if not parts:
            return cls(np.zeros(0, np.int32), np.zeros(1, np.int64))
        data = np.concatenate([p.data for p in parts])
        lengths = np.concatenate([p.lengths for p in parts])
        return cls(data, np.concatenate(([0], np.cumsum(lengths))))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        """The ids of sequence `i` (a view, no copy)."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} sequences")
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    @property
    def lengths(self) -> np.ndarray:
        """Length of every sequence (int64, shape (N,))."""
        return np.diff(self.offsets)

    def select(self, mask_or_indices: np.ndarray) -> TokenArray:
        """A new array with the sequences chosen by a boolean mask or an index array."""
        idx = np.asarray(mask_or_indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        lengths = self.lengths[idx]
        if len(idx) == 0:
            return TokenArray(np.zeros(0, np.int32), np.zeros(1, np.int64))
        starts = self.offsets[idx]
        # gather all selected ranges at once: position j of sequence k -> starts[k] + j
        new_offsets = np.concatenate(([0], np.cumsum(lengths)))
        within = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1], lengths)
        data = self.data[np.repeat(starts, lengths) + within]
        return TokenArray(data, new_offsets)

    def tolist(self) -> list[list[int]]:
        """Plain Python lists (for tests and small data)."""
        return [self[i].tolist() for i in range(len(self))]
