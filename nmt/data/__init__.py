"""Data pipeline: read the corpus, train/reuse the tokenizer, encode, filter and batch.

Entry points: `prepare_data` (training, `nmt.data.prepare`), `encode_sources` (translation),
`TokenBatchSampler`, `fixed_batches` and `collate` (batching). The training split is streamed
and stored on disk as memory-mapped token ids (see `nmt.data.stream`); valid/test are small and
kept in memory with their raw text (needed for BLEU). Corpus sources (local files, Hugging Face
datasets, synthetic tasks) are in `nmt.data.sources`. This module only re-exports.
"""

from __future__ import annotations

from nmt.data.arrays import TokenArray, TokenArrayWriter
from nmt.data.batching import Batch, TokenBatchSampler, collate, fixed_batches, shard_batches
from nmt.data.bundle import DataBundle, EncodedSplit, encode_sources
from nmt.data.corpus import (
    CorpusSource,
    DataError,
    PairStream,
    iter_local_pairs,
    load_corpus,
    load_hub_split,
    load_local_split,
    open_source,
    read_lines,
)
from nmt.data.prepare import prepare_data
from nmt.data.stream import CHUNK, is_blank
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
    "open_source",
    "prepare_data",
    "read_lines",
    "shard_batches",
]
