"""Where a corpus comes from: one small class per `data.source`, chosen from `SOURCES`.

A source hands out the three splits either as lists (`load`, for the small valid/test splits)
or as a lazily read `PairStream` (`stream`, for the training split). The base class applies
what every source shares: `data.max_train_lines` on the training split and `data.lowercase` /
`data.tokenize` on every line. Adding a source means one `CorpusSource` subclass (`_load` and
`_open`) plus one entry in `SOURCES` (and the allowed value in `nmt.config.validate`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nmt.config import DataConfig
from nmt.data.errors import DataError
from nmt.data.hub import iter_hub_chunks, load_hub_split, open_hub_split, text_columns
from nmt.data.pairs import Chunks, PairStream, chunked
from nmt.data.synthetic import SYNTHETIC_PREFIXES, SYNTHETIC_SEED, write_task
from nmt.data.text import normalize
from nmt.data.textfiles import (
    Pair,
    file_identity,
    find_split_file,
    iter_local_pairs,
    load_local_split,
    split_paths,
)

SPLITS = ("train", "valid", "test")
# what `_open` returns: a label for messages, plain data that changes with the corpus (cache
# keys), and `opener(size)`, which starts a fresh read in chunks of `size` raw pairs
Opened = tuple[str, dict[str, Any], Callable[[int], Chunks]]


class CorpusSource:
    """The three splits of `cfg`; subclasses say where the raw pairs come from."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg

    def load(self, split: str) -> Pair:
        """One split as (source lines, target lines), normalised as `cfg` says."""
        cfg = self.cfg
        src, tgt = self._load(split, self._max_lines(split))
        if cfg.lowercase or cfg.tokenize:
            src = [normalize(x, cfg.lowercase, cfg.tokenize) for x in src]
            tgt = [normalize(x, cfg.lowercase, cfg.tokenize) for x in tgt]
        return src, tgt

    def stream(self, split: str) -> PairStream:
        """One split as a re-iterable `PairStream`; files are found (or the dataset opened) now."""
        cfg = self.cfg
        max_lines = self._max_lines(split)
        label, identity, opener = self._open(split, max_lines)
        if split == "train" and cfg.extra_train:
            label, identity, opener = _with_extra_train(cfg, label, identity, opener)
        identity.update(max_lines=max_lines, lowercase=cfg.lowercase, tokenize=cfg.tokenize)
        return PairStream(label, identity, opener, cfg.lowercase, cfg.tokenize)

    def _max_lines(self, split: str) -> int | None:
        return self.cfg.max_train_lines if split == "train" else None

    def _load(self, split: str, max_lines: int | None) -> Pair:
        """The raw pairs of `split` as lists (at most `max_lines`)."""
        raise NotImplementedError

    def _open(self, split: str, max_lines: int | None) -> Opened:
        """Find the files (or open the dataset) of `split` for lazy reading."""
        raise NotImplementedError


def _with_extra_train(
    cfg: DataConfig, label: str, identity: dict[str, Any], opener: Callable[[int], Chunks]
) -> Opened:
    """The training split followed by the pairs of the `data.extra_train` files (local files,
    found now: a missing one is a DataError naming the paths tried; not cut by
    `data.max_train_lines`)."""
    extra = [
        split_paths(Path(p).parent, Path(p).name, cfg.src_lang, cfg.tgt_lang)
        for p in cfg.extra_train
    ]
    identity = {**identity, "extra_train": [[file_identity(a), file_identity(b)] for a, b in extra]}

    def chained(size: int) -> Chunks:
        yield from opener(size)
        for src_path, tgt_path in extra:
            yield from chunked(iter_local_pairs(src_path, tgt_path), size)

    names = ", ".join(f"{a}, {b}" for a, b in extra)
    return f"{label} + {names}", identity, chained


class LocalSource(CorpusSource):
    """Line-aligned text files `{data.root}/{prefix}.{lang}[.gz]` (data.source=local)."""

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        if not cfg.root:
            raise DataError("data.source=local needs data.root (or NMT_DATA_ROOT) to be set")
        if not os.path.isdir(cfg.root):
            raise DataError(f"data.root={cfg.root} is not a folder; set NMT_DATA_ROOT or data.root")
        self.root = cfg.root
        self.prefixes = self.split_prefixes(cfg)

    @staticmethod
    def split_prefixes(cfg: DataConfig) -> dict[str, str]:
        """Split name -> file prefix."""
        return {"train": cfg.train_prefix, "valid": cfg.valid_prefix, "test": cfg.test_prefix}

    def _load(self, split: str, max_lines: int | None) -> Pair:
        cfg = self.cfg
        return load_local_split(
            self.root, self.prefixes[split], cfg.src_lang, cfg.tgt_lang, max_lines
        )

    def _open(self, split: str, max_lines: int | None) -> Opened:
        cfg = self.cfg
        src_path, tgt_path = split_paths(
            self.root, self.prefixes[split], cfg.src_lang, cfg.tgt_lang
        )
        identity = {"kind": "local", "files": [file_identity(src_path), file_identity(tgt_path)]}

        def opener(size: int) -> Chunks:
            return chunked(iter_local_pairs(src_path, tgt_path, max_lines), size)

        return f"{src_path}, {tgt_path}", identity, opener


class SyntheticSource(LocalSource):
    """A generated task (`nmt.data.synthetic`) written to `data.root`, then read as local files.

    The task is the same for every run seed (`SYNTHETIC_SEED`): models vary, data does not.
    """

    def __init__(self, cfg: DataConfig) -> None:
        if not cfg.root:
            raise DataError(
                "data.source=synthetic needs data.root (the folder to write the task to)"
            )
        write_task(
            cfg.root,
            cfg.task,
            cfg.task_size,
            cfg.task_alphabet,
            cfg.task_min_len,
            cfg.task_max_len,
            SYNTHETIC_SEED,
            cfg.src_lang,
            cfg.tgt_lang,
        )
        super().__init__(cfg)

    @staticmethod
    def split_prefixes(cfg: DataConfig) -> dict[str, str]:
        return dict(SYNTHETIC_PREFIXES)


class HubSource(CorpusSource):
    """The Hugging Face dataset `data.hub_name` (data.source=hub).

    `no_local` is set when source=auto fell back to the hub: a hub failure then also says where
    local data was looked for, since the user may have meant to use local files.
    """

    def __init__(self, cfg: DataConfig, no_local: str | None = None) -> None:
        super().__init__(cfg)
        if not cfg.hub_name:
            raise DataError("data.source=hub needs data.hub_name (e.g. bentrevett/multi30k)")
        self.splits = {
            "train": cfg.hub_train_split,
            "valid": cfg.hub_valid_split,
            "test": cfg.hub_test_split,
        }
        self.no_local = no_local

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except DataError as err:
            if self.no_local is None:
                raise
            raise DataError(
                f"{self.no_local}; set NMT_DATA_ROOT or data.root to the corpus folder, or "
                f"allow network access for hub dataset {self.cfg.hub_name!r} ({err})"
            ) from None

    def _load(self, split: str, max_lines: int | None) -> Pair:
        cfg = self.cfg
        with self._errors():
            return load_hub_split(
                cfg.hub_name,
                cfg.hub_config,
                self.splits[split],
                cfg.src_lang,
                cfg.tgt_lang,
                max_lines,
            )

    def _open(self, split: str, max_lines: int | None) -> Opened:
        cfg = self.cfg
        with self._errors():
            ds, label = open_hub_split(cfg.hub_name, cfg.hub_config, self.splits[split], max_lines)
            text_columns(ds, label, cfg.src_lang, cfg.tgt_lang)  # schema errors now
        identity = {
            "kind": "hub",
            "label": label,
            "fingerprint": getattr(ds, "_fingerprint", None),
            "rows": len(ds),
        }

        def opener(size: int) -> Chunks:
            return iter_hub_chunks(ds, label, cfg.src_lang, cfg.tgt_lang, size)

        return label, identity, opener


def _has_local_train(cfg: DataConfig) -> bool:
    """True if `cfg.root` is a folder holding both sides of the training split."""
    if not cfg.root or not os.path.isdir(cfg.root):
        return False
    return all(
        find_split_file(cfg.root, cfg.train_prefix, lang) is not None
        for lang in (cfg.src_lang, cfg.tgt_lang)
    )


def _no_local(cfg: DataConfig) -> str:
    looked = (
        f"{cfg.root}/{cfg.train_prefix}.{{{cfg.src_lang},{cfg.tgt_lang}}}[.gz]"
        if cfg.root
        else "nowhere (data.root is unset)"
    )
    return f"no local data for {cfg.name!r}: looked for {looked}"


def auto_source(cfg: DataConfig) -> CorpusSource:
    """data.source=auto: local files when `data.root` holds the training split, else the hub."""
    if _has_local_train(cfg):
        return LocalSource(cfg)
    if not cfg.hub_name:
        raise DataError(
            f"{_no_local(cfg)}; set NMT_DATA_ROOT or data.root to the corpus "
            "folder, or data.hub_name to a Hugging Face dataset"
        )
    return HubSource(cfg, no_local=_no_local(cfg))


# data.source -> the source of a config
SOURCES: dict[str, Callable[[DataConfig], CorpusSource]] = {
    "auto": auto_source,
    "local": LocalSource,
    "hub": HubSource,
    "synthetic": SyntheticSource,
}


def open_source(cfg: DataConfig) -> CorpusSource:
    """The source `cfg.source` names, checked (folders exist, names are set) and ready to read."""
    make = SOURCES.get(cfg.source)
    if make is None:
        raise DataError(f"data.source={cfg.source!r} is not one of {', '.join(SOURCES)}")
    return make(cfg)


def load_corpus(cfg: DataConfig) -> dict[str, Pair]:
    """Load {"train", "valid", "test"} -> (source lines, target lines) as `cfg` describes.

    Applies `cfg.lowercase` to every split and `cfg.max_train_lines` to the training split.
    Reads everything into lists; `prepare_data` streams the training split instead.
    """
    source = open_source(cfg)
    return {split: source.load(split) for split in SPLITS}
