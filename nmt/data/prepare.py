"""`prepare_data`: from a data config to a `DataBundle` ready for training.

The training split is streamed (at most twice: a sample for SentencePiece, then encoding to
memory-mapped ids under the run folder); valid/test are small and loaded as lists. Whatever was
done before in the same run folder with the same corpus and settings (a trained tokenizer, an
encoded training split) is reused, so resumed runs and data-parallel ranks do not redo it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nmt.config import DataConfig
from nmt.data.bundle import DataBundle, EncodedSplit, encode_split
from nmt.data.errors import DataError
from nmt.data.pairs import PairStream
from nmt.data.sources import CorpusSource, open_source
from nmt.data.stream import (
    CHUNK,
    EncodedTrain,
    cached_tokenizer,
    encode_train,
    record_tokenizer,
    tokenizer_key,
    train_tokenizer,
)
from nmt.data.textfiles import Pair
from nmt.data.tokenizer import Tokenizer

Timer = Callable[[str, float], None]  # add seconds to a named timing in the stats


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
    stats: dict[str, Any] = {"tokenizer_cached": False}
    timer = _timer(stats)
    source = open_source(cfg)
    stream = source.stream("train")
    held = _load_held_out(source, cfg, log)
    n_sampled: int | None = None
    if tokenizer is None:
        tokenizer, n_sampled = _tokenizer_for(stream, cfg, out_dir, seed, stats, log)
    enc = _encode_train(stream, tokenizer, cfg, out_dir, timer, log)
    valid, test = (encode_split(tokenizer, *held[split]) for split in ("valid", "test"))
    stats.update(
        n_read=enc.n_read,
        n_kept=len(enc.src),
        n_empty=enc.n_empty,
        n_long=enc.n_long,
        train_cached=enc.cached,
        train_dir=str(enc.folder),
        total_s=round(time.perf_counter() - start, 3),
    )
    if n_sampled is not None and n_sampled != enc.n_read:  # pragma: no cover - files changed
        raise DataError(
            f"the training split changed while it was read ({n_sampled} then {enc.n_read} pairs)"
        )
    return DataBundle(
        tokenizer=tokenizer,
        train=EncodedSplit(enc.src, enc.tgt, [], []),
        valid=valid,
        test=test,
        stats=stats,
    )


def _timer(stats: dict[str, Any]) -> Timer:
    """A `Timer` that sums seconds into `stats[name]` (rounded to ms)."""

    def add(name: str, seconds: float) -> None:
        stats[name] = round(stats.get(name, 0.0) + seconds, 3)

    return add


def _load_held_out(source: CorpusSource, cfg: DataConfig, log: logging.Logger) -> dict[str, Pair]:
    """valid and test as lists (they are small, and BLEU needs their text)."""
    held = {split: source.load(split) for split in ("valid", "test")}
    for name, (src, _) in held.items():
        log.info(
            "%s: %d pairs read (%s-%s, source=%s)",
            name,
            len(src),
            cfg.src_lang,
            cfg.tgt_lang,
            cfg.source,
        )
    return held


def _tokenizer_for(
    stream: PairStream,
    cfg: DataConfig,
    out_dir: Path,
    seed: int,
    stats: dict[str, Any],
    log: logging.Logger,
) -> tuple[Tokenizer, int | None]:
    """The tokenizer trained earlier in `out_dir` for this corpus and these settings, or a new
    one trained on a sample of `stream`: (tokenizer, pairs read while sampling, None if reused).
    """
    key = tokenizer_key(stream, cfg, seed)
    tokenizer = cached_tokenizer(out_dir, key)
    if tokenizer is not None:
        stats["tokenizer_cached"] = True
        log.info("reusing the tokenizer trained earlier in %s (same corpus and settings)", out_dir)
        return tokenizer, None
    tokenizer, n_read = train_tokenizer(stream, cfg, out_dir, seed, _timer(stats), CHUNK)
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
    return tokenizer, n_read


def _encode_train(
    stream: PairStream,
    tokenizer: Tokenizer,
    cfg: DataConfig,
    out_dir: Path,
    timer: Timer,
    log: logging.Logger,
) -> EncodedTrain:
    """Encode and filter the training split (or reuse its encoding); fail if nothing is left."""
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
    return enc
