"""Data pipeline: read the corpus, train/reuse the tokenizer, encode, filter and batch.

Entry points: `prepare_data` (training), `encode_sources` (translation), `TokenBatchSampler`,
`fixed_batches` and `collate` (batching).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt.config import DataConfig
from nmt.data.arrays import TokenArray
from nmt.data.batching import Batch, TokenBatchSampler, collate, fixed_batches, shard_batches
from nmt.data.corpus import DataError, load_corpus, load_hub_split, load_local_split, read_lines
from nmt.data.tokenizer import BOS, EOS, PAD, UNK, Tokenizer

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "UNK",
    "Batch",
    "DataBundle",
    "DataError",
    "EncodedSplit",
    "TokenArray",
    "TokenBatchSampler",
    "Tokenizer",
    "collate",
    "encode_sources",
    "fixed_batches",
    "load_corpus",
    "load_hub_split",
    "load_local_split",
    "prepare_data",
    "read_lines",
    "shard_batches",
]

CHUNK = 10_000  # lines encoded at a time


@dataclass
class EncodedSplit:
    """One split: subword ids (without BOS/EOS) and the raw text, aligned by index."""

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


def is_blank(line: str) -> bool:
    """True if `line` holds nothing but whitespace and control/format characters."""
    s = line.strip()
    if not s:
        return True
    if s.isprintable():
        return False
    return all(unicodedata.category(c)[0] in "CZ" for c in s)


def _encode(encode: Callable[[list[str]], list[list[int]]], lines: Sequence[str]) -> TokenArray:
    """Encode `lines` in chunks into a TokenArray."""
    parts = [
        TokenArray.from_lists(encode(list(lines[i : i + CHUNK])))
        for i in range(0, len(lines), CHUNK)
    ]
    return TokenArray.concat(parts)


def encode_sources(
    tokenizer: Tokenizer, lines: Sequence[str], lowercase: bool = False
) -> TokenArray:
    """Encode source sentences for translation (pass the training `data.lowercase`)."""
    if lowercase:
        lines = [s.lower() for s in lines]
    return _encode(tokenizer.encode_src, lines)


def _encode_split(tokenizer: Tokenizer, src: list[str], tgt: list[str]) -> EncodedSplit:
    """Encode every pair of a split, keeping all lines."""
    return EncodedSplit(
        _encode(tokenizer.encode_src, src), _encode(tokenizer.encode_tgt, tgt), src, tgt
    )


def _encode_train(
    tokenizer: Tokenizer, src: list[str], tgt: list[str], max_len: int
) -> tuple[EncodedSplit, int, int]:
    """Encode training pairs, dropping empty and over-long ones; returns (split, n_empty, n_long)."""
    src_parts, tgt_parts = [], []
    src_text: list[str] = []
    tgt_text: list[str] = []
    n_empty = n_long = 0
    for start in range(0, len(src), CHUNK):
        s_lines, t_lines = src[start : start + CHUNK], tgt[start : start + CHUNK]
        s_ids = TokenArray.from_lists(tokenizer.encode_src(s_lines))
        t_ids = TokenArray.from_lists(tokenizer.encode_tgt(t_lines))
        s_len, t_len = s_ids.lengths, t_ids.lengths
        blank = np.fromiter(
            (is_blank(a) or is_blank(b) for a, b in zip(s_lines, t_lines)),
            dtype=bool,
            count=len(s_lines),
        )
        empty = blank | (s_len == 0) | (t_len == 0)
        long = ~empty & ((s_len > max_len) | (t_len > max_len))
        keep = ~(empty | long)
        n_empty += int(empty.sum())
        n_long += int(long.sum())
        src_parts.append(s_ids.select(keep))
        tgt_parts.append(t_ids.select(keep))
        kept = np.flatnonzero(keep).tolist()
        src_text.extend(s_lines[i] for i in kept)
        tgt_text.extend(t_lines[i] for i in kept)
    split = EncodedSplit(
        TokenArray.concat(src_parts), TokenArray.concat(tgt_parts), src_text, tgt_text
    )
    return split, n_empty, n_long


def prepare_data(
    cfg: DataConfig,
    out_dir: Path,
    tokenizer: Tokenizer | None,
    seed: int,
    log: logging.Logger,
) -> DataBundle:
    """Load the corpus, train (or reuse) the tokenizer, encode all splits and filter training pairs.

    A new tokenizer is trained on the training split only and saved in `out_dir`. Training pairs
    that are blank on either side or longer than `cfg.max_len` subwords on either side are
    dropped; valid/test keep every line.
    """
    corpus = load_corpus(cfg)
    for name, (s, _) in corpus.items():
        log.info(
            "%s: %d pairs read (%s-%s, source=%s)",
            name,
            len(s),
            cfg.src_lang,
            cfg.tgt_lang,
            cfg.source,
        )
    train_src, train_tgt = corpus["train"]
    if not train_src:
        raise DataError(f"training split of {cfg.name!r} is empty")
    if tokenizer is None:
        tokenizer = Tokenizer.train(
            train_src,
            train_tgt,
            model_type=cfg.spm_type,
            vocab_size=cfg.vocab_size,
            joint=cfg.joint_vocab,
            out_dir=Path(out_dir),
            max_lines=cfg.spm_train_lines,
            seed=seed,
        )
        log.info(
            "trained %s %s tokenizer: vocab src=%d tgt=%d (requested %d) -> %s",
            "joint" if cfg.joint_vocab else "separate",
            cfg.spm_type,
            tokenizer.src_vocab_size,
            tokenizer.tgt_vocab_size,
            cfg.vocab_size,
            out_dir,
        )
    train, n_empty, n_long = _encode_train(tokenizer, train_src, train_tgt, cfg.max_len)
    log.info(
        "train: kept %d of %d pairs (dropped %d empty, %d longer than max_len=%d)",
        len(train),
        len(train_src),
        n_empty,
        n_long,
        cfg.max_len,
    )
    if len(train) == 0:
        raise DataError(
            f"no training pairs left for {cfg.name!r} after filtering (max_len={cfg.max_len})"
        )
    valid = _encode_split(tokenizer, *corpus["valid"])
    test = _encode_split(tokenizer, *corpus["test"])
    return DataBundle(tokenizer=tokenizer, train=train, valid=valid, test=test)
