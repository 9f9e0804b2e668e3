"""Streaming preprocessing of the training split: constant memory in the corpus size.

The training split is read lazily in chunks (`PairStream`), twice at most:

1. when a tokenizer must be trained: a reservoir sample of at most `data.spm_train_lines`
   sentences per side is kept while streaming (Vitter's algorithm R, seeded), and SentencePiece
   is trained on it;
2. every chunk is encoded by SentencePiece in one batch call, blank and over-long pairs are
   dropped, and the ids are appended to `{out_dir}/data/train-<key>/train.{src,tgt}.{ids,offsets}.npy`,
   which are then opened as read-only memory maps (`TokenArray.load`).

Nothing holds the corpus as Python lists; peak memory is the tokenizer sample plus one chunk.
The encoded split is keyed by the corpus identity (file paths, sizes and mtimes, or the hub
dataset fingerprint), the filtering settings and the tokenizer, so a resumed run or another
data-parallel rank reuses it instead of encoding again. A tokenizer trained here is recorded in
`{out_dir}/data/tokenizer.json` (keyed by the corpus and the SentencePiece settings): a later
`prepare_data(tokenizer=None)` in the same folder with the same settings loads it instead of
training again. Directories are published by an atomic rename, so concurrent processes that
prepare the same data never see a partial result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmt.config import DataConfig
from nmt.data.arrays import TokenArray, TokenArrayWriter
from nmt.data.errors import DataError
from nmt.data.pairs import PairStream
from nmt.data.tokenizer import Tokenizer
from nmt.files import atomic_write_text

CHUNK = 10_000  # lines read, encoded and written at a time
CACHE_VERSION = 1
DATA_DIR = "data"
TOKENIZER_RECORD = "tokenizer.json"


def is_blank(line: str) -> bool:
    """True if `line` holds nothing but whitespace and control/format characters."""
    s = line.strip()
    if not s:
        return True
    if s.isprintable():
        return False
    return all(unicodedata.category(c)[0] in "CZ" for c in s)


# --- sampling ------------------------------------------------------------------------------
class Reservoir:
    """A uniform sample of at most `k` items of a stream, in O(k) memory (algorithm R).

    Deterministic for a given seed and stream. While fewer than `k` items have been seen, the
    sample is every item in stream order.
    """

    def __init__(self, k: int, seed: int) -> None:
        self.k = max(int(k), 0)
        self.items: list[str] = []
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def extend(self, items: list[str]) -> None:
        room = self.k - len(self.items)
        if room > 0:
            self.items.extend(items[:room])
            self.seen += min(room, len(items))
            items = items[room:]
        if not items:
            return
        # the item with 0-based stream index i replaces slot j ~ U{0..i} when j < k
        index = np.arange(self.seen, self.seen + len(items), dtype=np.int64)
        slots = self._rng.integers(0, index + 1)
        for pos in np.flatnonzero(slots < self.k).tolist():
            self.items[int(slots[pos])] = items[pos]
        self.seen += len(items)


def sample_for_tokenizer(
    stream: PairStream, max_lines: int, seed: int, chunk: int = CHUNK
) -> tuple[list[str], list[str], int]:
    """Stream the split once: (source sample, target sample, number of pairs read).

    Each side keeps at most `max_lines` non-blank sentences. Line-count mismatches and invalid
    UTF-8 raise DataError as the stream reaches them.
    """
    src_res = Reservoir(max_lines, seed)
    tgt_res = Reservoir(max_lines, seed + 1)
    n = 0
    for src, tgt in stream.chunks(chunk):
        n += len(src)
        src_res.extend([s for s in src if s.strip()])
        tgt_res.extend([t for t in tgt if t.strip()])
    return src_res.items, tgt_res.items, n


# --- encoding to disk ------------------------------------------------------------------------
@dataclass
class EncodedTrain:
    src: TokenArray  # memory-mapped
    tgt: TokenArray
    n_read: int
    n_empty: int
    n_long: int
    folder: Path
    cached: bool


def _encode_chunk(
    tokenizer: Tokenizer, src: list[str], tgt: list[str], max_len: int
) -> tuple[TokenArray, TokenArray, int, int]:
    """Encode one chunk and drop blank/empty and over-long pairs: (src, tgt, n_empty, n_long)."""
    s_ids = TokenArray.from_lists(tokenizer.encode_src(src))
    t_ids = TokenArray.from_lists(tokenizer.encode_tgt(tgt))
    s_len, t_len = s_ids.lengths, t_ids.lengths
    blank = np.fromiter(
        (is_blank(a) or is_blank(b) for a, b in zip(src, tgt)), dtype=bool, count=len(src)
    )
    empty = blank | (s_len == 0) | (t_len == 0)
    long = ~empty & ((s_len > max_len) | (t_len > max_len))
    keep = ~(empty | long)
    return s_ids.select(keep), t_ids.select(keep), int(empty.sum()), int(long.sum())


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    d = tokenizer.to_dict()
    return hashlib.sha256(
        bytes(d["src"]) + b"\0" + bytes(d["tgt"]) + bytes([d["joint"]])
    ).hexdigest()


def _encoding_key(stream: PairStream, cfg: DataConfig, tokenizer: Tokenizer) -> str:
    return _digest(
        {
            "version": CACHE_VERSION,
            "corpus": stream.identity,
            "max_len": cfg.max_len,
            "tokenizer": tokenizer_digest(tokenizer),
        }
    )


def tokenizer_key(stream: PairStream, cfg: DataConfig, seed: int) -> str:
    """What a trained tokenizer depends on: the corpus, the SentencePiece settings and the seed."""
    return _digest(
        {
            "version": CACHE_VERSION,
            "corpus": stream.identity,
            "spm_type": cfg.spm_type,
            "vocab_size": cfg.vocab_size,
            "joint": cfg.joint_vocab,
            "spm_train_lines": cfg.spm_train_lines,
            "seed": seed,
        }
    )


def _load_encoded(folder: Path) -> EncodedTrain | None:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        info = json.loads(manifest.read_text())
        src = TokenArray.load(folder / "train.src")
        tgt = TokenArray.load(folder / "train.tgt")
    except (OSError, ValueError):
        return None
    if len(src) != info["n_kept"] or len(tgt) != info["n_kept"]:
        return None
    return EncodedTrain(src, tgt, info["n_read"], info["n_empty"], info["n_long"], folder, True)


def encode_train(
    stream: PairStream,
    tokenizer: Tokenizer,
    cfg: DataConfig,
    out_dir: Path,
    chunk: int = CHUNK,
    log: logging.Logger | None = None,
) -> EncodedTrain:
    """Encode the training split to memory-mapped files under `out_dir/data/`, or reuse them."""
    key = _encoding_key(stream, cfg, tokenizer)
    data_dir = Path(out_dir) / DATA_DIR
    final = data_dir / f"train-{key[:16]}"
    cached = _load_encoded(final)
    if cached is not None:
        if log:
            log.info("train: reusing the encoded split in %s", final)
        return cached
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_encoded(tmp, stream, tokenizer, cfg, chunk, key)
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result = _load_encoded(final)
    if result is None:  # pragma: no cover - only if someone deletes the folder meanwhile
        raise DataError(f"encoded training data in {final} is unreadable")
    result.cached = False
    return result


def _write_encoded(
    folder: Path, stream: PairStream, tokenizer: Tokenizer, cfg: DataConfig, chunk: int, key: str
) -> None:
    """Encode and filter the split into `folder`: ids and offsets of both sides, manifest.json."""
    src_w, tgt_w = TokenArrayWriter(folder / "train.src"), TokenArrayWriter(folder / "train.tgt")
    n_read = n_empty = n_long = 0
    try:
        for src, tgt in stream.chunks(chunk):
            s, t, e, lg = _encode_chunk(tokenizer, src, tgt, cfg.max_len)
            src_w.append(s)
            tgt_w.append(t)
            n_read, n_empty, n_long = n_read + len(src), n_empty + e, n_long + lg
    except BaseException:
        src_w.abort()
        tgt_w.abort()
        raise
    src_w.close()
    tgt_w.close()
    info = {
        "version": CACHE_VERSION,
        "key": key,
        "corpus": stream.identity,
        "max_len": cfg.max_len,
        "tokenizer_sha256": tokenizer_digest(tokenizer),
        "n_read": n_read,
        "n_kept": src_w.count,
        "n_empty": n_empty,
        "n_long": n_long,
        "src_ids": src_w.total,
        "tgt_ids": tgt_w.total,
    }
    # written inside the unpublished folder: the folder rename below makes it visible whole
    (folder / "manifest.json").write_text(json.dumps(info, indent=1) + "\n")


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished folder `tmp` to `final` (atomic), then drop older encodings.

    If another process published the same encoding first, the rename fails and ours is dropped.
    """
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        _remove_stale(final.parent, keep=final.name)


def _remove_stale(data_dir: Path, keep: str) -> None:
    """Delete encodings of an earlier corpus/tokenizer in the same run folder."""
    for old in data_dir.glob("train-*"):
        if old.name != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


# --- tokenizer -----------------------------------------------------------------------------
def cached_tokenizer(out_dir: Path, key: str) -> Tokenizer | None:
    """The tokenizer previously trained in `out_dir` for the same key, if any."""
    record = Path(out_dir) / DATA_DIR / TOKENIZER_RECORD
    try:
        info = json.loads(record.read_text())
        if info.get("key") != key:
            return None
        tok = Tokenizer.load(out_dir)
    except (OSError, ValueError):
        return None
    return tok if tokenizer_digest(tok) == info.get("sha256") else None


def record_tokenizer(out_dir: Path, key: str, tokenizer: Tokenizer) -> None:
    """Note which corpus and settings the tokenizer in `out_dir` was trained for."""
    record = Path(out_dir) / DATA_DIR / TOKENIZER_RECORD
    atomic_write_text(
        record, json.dumps({"key": key, "sha256": tokenizer_digest(tokenizer)}) + "\n"
    )


def train_tokenizer(
    stream: PairStream,
    cfg: DataConfig,
    out_dir: Path,
    seed: int,
    timer: Callable[[str, float], None] | None = None,
    chunk: int = CHUNK,
) -> tuple[Tokenizer, int]:
    """Sample the stream and train SentencePiece on it: (tokenizer, pairs read)."""
    tick = time.perf_counter()
    src_sample, tgt_sample, n = sample_for_tokenizer(stream, cfg.spm_train_lines, seed, chunk)
    if timer:
        timer("sample_s", time.perf_counter() - tick)
    if n == 0:
        raise DataError(f"training split of {cfg.name!r} is empty")
    tick = time.perf_counter()
    tok = Tokenizer.train(
        src_sample,
        tgt_sample,
        model_type=cfg.spm_type,
        vocab_size=cfg.vocab_size,
        joint=cfg.joint_vocab,
        out_dir=Path(out_dir),
        max_lines=cfg.spm_train_lines,
        seed=seed,
    )
    if timer:
        timer("spm_train_s", time.perf_counter() - tick)
    return tok, n
