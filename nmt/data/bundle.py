"""What the data pipeline hands to training and translation: encoded splits and the tokenizer.

Valid/test keep their raw text next to the ids (BLEU is computed on text); the streamed
training split keeps only memory-mapped ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmt.data.arrays import TokenArray
from nmt.data.batching import Batch, collate
from nmt.data.stream import CHUNK
from nmt.data.text import normalize
from nmt.data.tokenizer import Tokenizer


@dataclass
class EncodedSplit:
    """One split: subword ids (without BOS/EOS) and the raw text, aligned by index.

    For the (streamed, memory-mapped) training split the text lists are empty: the raw
    training text is never held in memory. valid/test keep their text for BLEU.
    """

    src: TokenArray
    tgt: TokenArray
    src_text: list[str]
    tgt_text: list[str]

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, indices: Sequence[int] | np.ndarray, with_target: bool = True) -> Batch:
        """Collate the examples at `indices` into a padded `Batch`."""
        idx = np.asarray(indices, dtype=np.int64)
        src = [self.src[int(i)] for i in idx]
        tgt = [self.tgt[int(i)] for i in idx] if with_target else None
        return collate(src, tgt, idx)


@dataclass
class DataBundle:
    """Tokenizer plus the encoded train/valid/test splits."""

    tokenizer: Tokenizer
    train: EncodedSplit
    valid: EncodedSplit
    test: EncodedSplit
    # counts and timings of the preparation: n_read, n_kept, n_empty, n_long, tokenizer_cached,
    # train_cached, sample_s, spm_train_s, encode_s, total_s, train_dir
    stats: dict[str, Any] = field(default_factory=dict)


def encode_lines(
    encode: Callable[[list[str]], list[list[int]]], lines: Sequence[str]
) -> TokenArray:
    """Encode `lines` in chunks into a TokenArray (SentencePiece's batch call, bounded lists)."""
    parts = [
        TokenArray.from_lists(encode(list(lines[i : i + CHUNK])))
        for i in range(0, len(lines), CHUNK)
    ]
    return TokenArray.concat(parts)


def encode_sources(
    tokenizer: Tokenizer, lines: Sequence[str], lowercase: bool = False, tokenize: bool = False
) -> TokenArray:
    """Encode raw source sentences for translation (pass the training `data.lowercase` and
    `data.tokenize`; text that was normalised already, e.g. `EncodedSplit.src_text`, must not
    be tokenized twice)."""
    if lowercase or tokenize:
        lines = [normalize(s, lowercase, tokenize) for s in lines]
    return encode_lines(tokenizer.encode_src, lines)


def encode_split(tokenizer: Tokenizer, src: list[str], tgt: list[str]) -> EncodedSplit:
    """Encode every pair of a split, keeping all lines and their text."""
    return EncodedSplit(
        encode_lines(tokenizer.encode_src, src), encode_lines(tokenizer.encode_tgt, tgt), src, tgt
    )
