"""Compact storage for many variable-length token-id sequences, in memory or on disk.

On disk a TokenArray is two `.npy` files, `{prefix}.ids.npy` (int32) and `{prefix}.offsets.npy`
(int64), written chunk by chunk by `TokenArrayWriter` and opened as read-only memory maps by
`TokenArray.load`, so a corpus never has to fit in memory.
"""

from __future__ import annotations

import ast
import itertools
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

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

    # --- on disk -------------------------------------------------------------------------
    @staticmethod
    def paths(prefix: str | Path) -> tuple[Path, Path]:
        """The (ids, offsets) file names of an array stored under `prefix`."""
        return Path(f"{prefix}.ids.npy"), Path(f"{prefix}.offsets.npy")

    @classmethod
    def load(cls, prefix: str | Path, mmap: bool = True) -> TokenArray:
        """Open an array written by `TokenArrayWriter`; memory-mapped read-only by default."""
        ids_path, off_path = cls.paths(prefix)
        offsets = np.load(off_path, mmap_mode="r" if mmap else None)
        n_ids = int(offsets[-1])
        # an empty file region cannot be mapped; a 0-length array costs nothing in memory anyway
        data = np.load(ids_path, mmap_mode="r" if mmap and n_ids else None)
        return cls(data, offsets)


class _NpyAppender:
    """A 1-D `.npy` file written by appending chunks; the fixed-size header is rewritten on close."""

    HEADER = 128  # bytes: magic + version + length + dict, a multiple of 64 as the format asks

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path, self.dtype, self.count = path, np.dtype(dtype), 0
        self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.file.write(self._header(0))

    def _header(self, n: int) -> bytes:
        body = repr(
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (n,),
            }
        ).encode("latin1")
        prefix = b"\x93NUMPY\x01\x00"
        pad = self.HEADER - len(prefix) - 2 - len(body) - 1
        assert pad >= 0 and ast.literal_eval(body.decode("latin1"))["shape"] == (n,)
        header = body + b" " * pad + b"\n"
        return prefix + struct.pack("<H", len(header)) + header

    def append(self, values: np.ndarray) -> None:
        arr = np.ascontiguousarray(values, dtype=self.dtype)
        self.file.write(arr.tobytes())
        self.count += len(arr)

    def close(self) -> None:
        self.file.flush()
        self.file.seek(0)
        self.file.write(self._header(self.count))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def abort(self) -> None:
        self.file.close()


class TokenArrayWriter:
    """Append TokenArrays (or id lists) to `{prefix}.ids.npy` / `{prefix}.offsets.npy` on disk.

    Memory use is one chunk at a time; `close()` finalises the headers, then `TokenArray.load`
    opens the result as a memory map.
    """

    def __init__(self, prefix: str | Path) -> None:
        ids_path, off_path = TokenArray.paths(prefix)
        self.prefix = prefix
        self._ids = _NpyAppender(ids_path, np.dtype(np.int32))
        self._offsets = _NpyAppender(off_path, np.dtype(np.int64))
        self._offsets.append(np.zeros(1, np.int64))
        self.total = 0  # ids written so far
        self.count = 0  # sequences written so far

    def append(self, arr: TokenArray) -> None:
        """Write the sequences of `arr` after those already written."""
        if len(arr) == 0:
            return
        self._ids.append(arr.data)
        self._offsets.append(arr.offsets[1:] + self.total)
        self.total += len(arr.data)
        self.count += len(arr)

    def close(self) -> TokenArray:
        """Finish the files and return them opened as a memory-mapped TokenArray."""
        self._ids.close()
        self._offsets.close()
        return TokenArray.load(self.prefix)

    def abort(self) -> None:
        """Close the files without finishing them (the caller deletes them)."""
        self._ids.abort()
        self._offsets.abort()
