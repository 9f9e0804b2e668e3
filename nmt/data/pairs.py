"""A split read lazily: `PairStream` yields (sources, targets) chunks, normalised as configured.

The training split is streamed rather than loaded so memory does not grow with the corpus (see
`nmt.data.stream`); every source (`nmt.data.sources`) hands out its splits this way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from nmt.data.errors import DataError
from nmt.data.text import normalize
from nmt.data.textfiles import Pair

Chunks = Iterator[Pair]  # a split read lazily, a few thousand pairs at a time


def chunked(pairs: Iterator[tuple[str, str]], size: int) -> Chunks:
    """Group a stream of pairs into (sources, targets) lists of at most `size` pairs."""
    while True:
        block = list(itertools.islice(pairs, size))
        if not block:
            return
        yield [p[0] for p in block], [p[1] for p in block]


class PairStream:
    """A split read lazily in chunks of pairs; every `chunks()` call reads it from the start.

    `identity` is plain data that changes when the underlying files or dataset change (used to
    key caches of the encoded split). `opener(size)` starts a fresh read of the raw pairs.
    """

    def __init__(
        self,
        label: str,
        identity: dict[str, Any],
        opener: Callable[[int], Chunks],
        lowercase: bool,
        tokenize: bool = False,
    ) -> None:
        self.label, self.identity = label, identity
        self._opener, self._lowercase, self._tokenize = opener, lowercase, tokenize

    def chunks(self, size: int = 10_000) -> Chunks:
        """(sources, targets) lists of at most `size` pairs, in corpus order.

        Reading the whole split without finding a pair raises a DataError naming the files.
        """
        n = 0
        for src, tgt in self._opener(size):
            n += len(src)
            if self._lowercase or self._tokenize:
                src = [normalize(x, self._lowercase, self._tokenize) for x in src]
                tgt = [normalize(x, self._lowercase, self._tokenize) for x in tgt]
            yield src, tgt
        if n == 0:
            raise DataError(f"{self.label}: no sentence pairs (empty files or split)")
