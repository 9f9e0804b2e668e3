"""Data pipeline: read the corpus, train/reuse the tokenizer, encode, filter and batch.

Entry points: `prepare_data` (training), `encode_sources` (translation), `TokenBatchSampler`,
`fixed_batches` and `collate` (batching). The training split is streamed and stored on disk as
memory-mapped token ids (see `nmt.data.stream`); valid/test are small and kept in memory with
their raw text (needed for BLEU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmt.config import DataConfig
from nmt.data.arrays import TokenArray, TokenArrayWriter
from nmt.data.batching import Batch, TokenBatchSampler, collate, fixed_batches, shard_batches
from nmt.data.corpus import (
    CorpusSource,
    DataError,
    PairStream,
    iter_local_pairs,
    load_corpus,
    load_hub_split,
    load_local_split,
    read_lines,
)
from nmt.data.stream import (
    CHUNK,
    cached_tokenizer,
    encode_train,
    is_blank,
    record_tokenizer,
    tokenizer_key,
    train_tokenizer,
)
from nmt.data.tokenizer import BOS, EOS, PAD, UNK, Tokenizer

__all__ = [
    "BOS",
    "CHUNK",
    "EOS",
    "PAD",
    "UNK",
    "Batch",
    "CorpusSource",
    "DataBundle",
    "DataError",
    "EncodedSplit",
    "PairStream",
    "TokenArray",
    "TokenArrayWriter",
    "TokenBatchSampler",
    "Tokenizer",
    "collate",
    "encode_sources",
    "fixed_batches",
    "is_blank",
    "iter_local_pairs",
    "load_corpus",
    "load_hub_split",
    "load_local_split",
    "prepare_data",
    "read_lines",
    "shard_batches",
]


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


def prepare_data(
    cfg: DataConfig,
    out_dir: Path,
    tokenizer: Tokenizer | None,
    seed: int,
    log: logging.Logger,
) -> DataBundle:
    """Load the corpus, train (or reuse) the tokenizer, encode all splits and filter training pairs.

    A new tokenizer is trained on a sample of the training split only (at most
    `cfg.spm_train_lines` sentences per side) and saved in `out_dir`; a tokenizer trained earlier
    in `out_dir` from the same corpus and settings is reused. Training pairs that are blank on
    either side or longer than `cfg.max_len` subwords on either side are dropped; valid/test
    keep every line. The training split is streamed: its ids are written to
    `out_dir/data/train-<key>/` and memory-mapped, and `train.src_text`/`tgt_text` are empty.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    stats: dict[str, Any] = {}

    def timer(name: str, seconds: float) -> None:
        stats[name] = round(stats.get(name, 0.0) + seconds, 3)

    source = CorpusSource(cfg)
    stream = source.stream("train")
    held = {split: source.load(split) for split in ("valid", "test")}
    for name, (s, _) in held.items():
        log.info(
            "%s: %d pairs read (%s-%s, source=%s)",
            name,
            len(s),
            cfg.src_lang,
            cfg.tgt_lang,
            cfg.source,
        )
    n_read: int | None = None
    stats["tokenizer_cached"] = False
    if tokenizer is None:
        key = tokenizer_key(stream, cfg, seed)
        tokenizer = cached_tokenizer(out_dir, key)
        if tokenizer is not None:
            stats["tokenizer_cached"] = True
            log.info(
                "reusing the tokenizer trained earlier in %s (same corpus and settings)", out_dir
            )
        else:
            tokenizer, n_read = train_tokenizer(stream, cfg, out_dir, seed, timer, CHUNK)
            record_tokenizer(out_dir, key, tokenizer)
            log.info(
                "trained %s %s tokenizer on a sample of at most %d sentences per side: "
                "vocab src=%d tgt=%d (requested %d) -> %s",
                "joint" if cfg.joint_vocab else "separate",
                cfg.spm_type,
                cfg.spm_train_lines,
                tokenizer.src_vocab_size,
                tokenizer.tgt_vocab_size,
                cfg.vocab_size,
                out_dir,
            )
    tick = time.perf_counter()
    enc = encode_train(stream, tokenizer, cfg, out_dir, CHUNK, log)
    timer("encode_s", time.perf_counter() - tick)
    if enc.n_read == 0:
        raise DataError(f"training split of {cfg.name!r} is empty")
    log.info(
        "train: %d pairs read (%s-%s, source=%s)",
        enc.n_read,
        cfg.src_lang,
        cfg.tgt_lang,
        cfg.source,
    )
    log.info(
        "train: kept %d of %d pairs (dropped %d empty, %d longer than max_len=%d)",
        len(enc.src),
        enc.n_read,
        enc.n_empty,
        enc.n_long,
        cfg.max_len,
    )
    if len(enc.src) == 0:
        raise DataError(
            f"no training pairs left for {cfg.name!r} after filtering (max_len={cfg.max_len})"
        )
    train = EncodedSplit(enc.src, enc.tgt, [], [])
    valid = _encode_split(tokenizer, *held["valid"])
    test = _encode_split(tokenizer, *held["test"])
    stats.update(
        n_read=enc.n_read,
        n_kept=len(enc.src),
        n_empty=enc.n_empty,
        n_long=enc.n_long,
        train_cached=enc.cached,
        train_dir=str(enc.folder),
        total_s=round(time.perf_counter() - start, 3),
    )
    if n_read is not None and n_read != enc.n_read:  # pragma: no cover - files changed meanwhile
        raise DataError(
            f"the training split changed while it was read ({n_read} then {enc.n_read} pairs)"
        )
    return DataBundle(tokenizer=tokenizer, train=train, valid=valid, test=test, stats=stats)
