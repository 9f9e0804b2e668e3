"""Reading parallel corpora: the stable import path for readers and corpus sources.

The code lives in one module per job: `errors` (DataError), `textfiles` (local plain/gzip
files), `hub` (Hugging Face datasets), `pairs` (lazily read splits), `synthetic` (generated
tasks) and `sources` (one class per `data.source`, chosen from `SOURCES`). Callers outside the
data package import from here or from `nmt.data`.
"""

from __future__ import annotations

from nmt.data.errors import DataError
from nmt.data.hub import iter_hub_chunks, load_hub_split, open_hub_split
from nmt.data.pairs import Chunks, PairStream
from nmt.data.sources import (
    SOURCES,
    SPLITS,
    CorpusSource,
    HubSource,
    LocalSource,
    SyntheticSource,
    load_corpus,
    open_source,
)
from nmt.data.synthetic import SYNTHETIC_PREFIXES, SYNTHETIC_SEED
from nmt.data.textfiles import (
    Pair,
    find_split_file,
    iter_local_pairs,
    load_local_split,
    read_lines,
)

__all__ = [
    "SOURCES",
    "SPLITS",
    "SYNTHETIC_PREFIXES",
    "SYNTHETIC_SEED",
    "Chunks",
    "CorpusSource",
    "DataError",
    "HubSource",
    "LocalSource",
    "Pair",
    "PairStream",
    "SyntheticSource",
    "find_split_file",
    "iter_hub_chunks",
    "iter_local_pairs",
    "load_corpus",
    "load_hub_split",
    "load_local_split",
    "open_hub_split",
    "open_source",
    "read_lines",
]
