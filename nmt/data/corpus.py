"""Reading parallel corpora: local text files (plain or gzip), Hugging Face datasets, synthetic tasks.

Every failure is a `DataError` with a one-line message naming the file (or dataset), the line
when there is one, and what is wrong.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nmt.config import DataConfig
from nmt.data.text import normalize
from nmt.errors import UserError

Pair = tuple[list[str], list[str]]
Chunks = Iterator[Pair]  # a split read lazily, a few thousand pairs at a time
SPLITS = ("train", "valid", "test")
SYNTHETIC_PREFIXES = {"train": "train", "valid": "val", "test": "test"}
SYNTHETIC_SEED = 1234  # synthetic data is the same for every run seed; models vary, data does not


class DataError(UserError, ValueError):
    """A corpus file or dataset is missing, unreadable or malformed; the message is one line."""


def _open_binary(path: Path):
    """Open `path` for binary reading, transparently decompressing `.gz`."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _iter_lines(path: Path) -> Iterator[str]:
    """Yield the lines of `path` decoded as strict UTF-8, without the trailing newline/CR."""
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad = raw[err.start]
                    raise DataError(
                        f"{path}:{lineno}: invalid UTF-8 (byte 0x{bad:02x} at column {err.start + 1})"
                    ) from None
                line = line.rstrip("\r\n")
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield line
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({err})") from None


def read_lines(path: str | Path, max_lines: int | None = None) -> list[str]:
    """Read a plain or `.gz` UTF-8 text file into a list of lines (at most `max_lines`).

    Only the trailing newline / carriage return is removed; blank lines are kept so that the
    two sides of a parallel corpus stay aligned.
    """
    path = Path(path)
    out: list[str] = []
    if max_lines is not None and max_lines <= 0:
        return out
    for line in _iter_lines(path):
        out.append(line)
        if max_lines is not None and len(out) >= max_lines:
            break
    return out


def _candidates(root: Path, prefix: str, lang: str) -> list[Path]:
    """The file names tried for one side of a split, in order of preference."""
    return [root / f"{prefix}.{lang}", root / f"{prefix}.{lang}.gz"]


def find_split_file(root: str | Path, prefix: str, lang: str) -> Path | None:
    """Return `{root}/{prefix}.{lang}` or its `.gz` variant if either is a file, else None."""
    for path in _candidates(Path(root), prefix, lang):
        if path.is_file():
            return path
    return None


def load_local_split(
    root: str | Path, prefix: str, src_lang: str, tgt_lang: str, max_lines: int | None = None
) -> Pair:
    """Read the line-aligned files `{root}/{prefix}.{src_lang,tgt_lang}[.gz]`.

    With `max_lines`, at most that many pairs are read (and the line-count check only sees them).
    """
    paths = _split_paths(root, prefix, src_lang, tgt_lang)
    src, tgt = (read_lines(p, max_lines) for p in paths)
    if len(src) != len(tgt):
        raise DataError(
            f"line counts differ: {paths[0]} has {len(src)} lines, {paths[1]} has {len(tgt)} lines"
        )
    return src, tgt


def _split_paths(root: str | Path, prefix: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path]:
    """The two files of a local split, or a DataError naming the paths tried."""
    root = Path(root)
    paths = []
    for lang in (src_lang, tgt_lang):
        path = find_split_file(root, prefix, lang)
        if path is None:
            tried = ", ".join(str(p) for p in _candidates(root, prefix, lang))
            raise DataError(f"missing split {prefix!r} ({lang}): tried {tried}")
        paths.append(path)
    return paths[0], paths[1]


def iter_local_pairs(
    src_path: Path, tgt_path: Path, max_lines: int | None = None
) -> Iterator[tuple[str, str]]:
    """Yield the aligned line pairs of two files one at a time (plain or `.gz`).

    Memory use does not depend on the file sizes. A line-count mismatch is found when the
    shorter file ends: the remaining lines of the longer one are counted and a DataError names
    both files and both counts. With `max_lines`, at most that many pairs are read (and the
    check only sees them), as in `load_local_split`.
    """
    src_it, tgt_it = _iter_lines(src_path), _iter_lines(tgt_path)
    n = 0
    while max_lines is None or n < max_lines:
        s = next(src_it, None)
        t = next(tgt_it, None)
        if s is None or t is None:
            if s is None and t is None:
                return
            n_src = n + (s is not None) + sum(1 for _ in src_it)
            n_tgt = n + (t is not None) + sum(1 for _ in tgt_it)
            raise DataError(
                f"line counts differ: {src_path} has {n_src} lines, {tgt_path} has {n_tgt} lines"
            )
        yield s, t
        n += 1


def _chunked(pairs: Iterator[tuple[str, str]], size: int) -> Chunks:
    """Group a stream of pairs into (sources, targets) lists of at most `size` pairs."""
    while True:
        block = list(itertools.islice(pairs, size))
        if not block:
            return
        yield [p[0] for p in block], [p[1] for p in block]


def _is_saved_dataset(path: Path) -> bool:
    """True if `path` is a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _text_columns(ds: Any, name: str, src_lang: str, tgt_lang: str) -> tuple[Any, str, str]:
    """(dataset, source column, target column) for a `datasets.Dataset` with a supported schema.

    A `translation` dict column is flattened (an Arrow operation, no Python lists).
    """
    cols = list(ds.column_names)
    if src_lang in cols and tgt_lang in cols:
        return ds, src_lang, tgt_lang
    if "translation" in cols:
        flat = ds.select_columns(["translation"]).flatten()
        keys = [f"translation.{src_lang}", f"translation.{tgt_lang}"]
        missing = [k for k in keys if k not in flat.column_names]
        if missing:
            raise DataError(
                f"{name}: 'translation' column has keys {[c.split('.', 1)[1] for c in flat.column_names]}, "
                f"expected {src_lang!r} and {tgt_lang!r}"
            )
        return flat, keys[0], keys[1]
    raise DataError(
        f"{name}: unsupported schema, columns {cols}; expected columns {src_lang!r} and "
        f"{tgt_lang!r} or a 'translation' dict column"
    )


def _columns(ds: Any, name: str, src_lang: str, tgt_lang: str) -> Pair:
    """Extract the two text columns from a `datasets.Dataset` with a supported schema."""
    ds, a, b = _text_columns(ds, name, src_lang, tgt_lang)
    src, tgt = ds[a], ds[b]
    return ["" if s is None else s for s in src], ["" if t is None else t for t in tgt]


def open_hub_split(
    name: str,
    config: str | None,
    split: str,
    max_lines: int | None = None,
    cache_dir: str | None = None,
) -> tuple[Any, str]:
    """One split of a Hugging Face dataset as an Arrow-backed `datasets.Dataset`, and its label.

    See `load_hub_split` for what `name` may be. Nothing is read into Python lists here.
    """
    import datasets  # slow import; only needed here

    path = Path(name)
    label = f"{name}[{split}]" if config is None else f"{name}/{config}[{split}]"
    if path.is_dir() and _is_saved_dataset(path):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{name}: no split {split!r}; splits found: {sorted(loaded)}")
            ds = loaded[split]
        else:
            ds = loaded
    else:
        try:
            ds = datasets.load_dataset(name, config, split=split, cache_dir=cache_dir)
        except DataError:
            raise
        except Exception as err:  # network, missing dataset/config/split: one line, named
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise DataError(f"cannot load {label}: {type(err).__name__}: {first}") from None
    if max_lines is not None and max_lines < len(ds):
        ds = ds.select(range(max(max_lines, 0)))
    return ds, label


def iter_hub_chunks(ds: Any, label: str, src_lang: str, tgt_lang: str, size: int) -> Chunks:
    """Read a hub split in batches of `size` pairs (Arrow record batches; None becomes "")."""
    ds, a, b = _text_columns(ds, label, src_lang, tgt_lang)
    for batch in ds.iter(batch_size=size):
        yield (
            ["" if s is None else s for s in batch[a]],
            ["" if t is None else t for t in batch[b]],
        )


def load_hub_split(
    name: str,
    config: str | None,
    split: str,
    src_lang: str,
    tgt_lang: str,
    max_lines: int | None = None,
    cache_dir: str | None = None,
) -> Pair:
    """Load one split of a Hugging Face dataset as (source lines, target lines).

    `name` may be a hub id (`bentrevett/multi30k`, `wmt/wmt14` + `de-en`, ...), a local folder
    written by `save_to_disk` (a DatasetDict, or a Dataset used for any split), or a local
    folder of data files (e.g. `train-*.parquet`) that `datasets.load_dataset` understands.
    """
    ds, label = open_hub_split(name, config, split, max_lines, cache_dir)
    return _columns(ds, label, src_lang, tgt_lang)


def _local_prefixes(cfg: DataConfig) -> dict[str, str]:
    return {"train": cfg.train_prefix, "valid": cfg.valid_prefix, "test": cfg.test_prefix}


def _hub_splits(cfg: DataConfig) -> dict[str, str]:
    return {"train": cfg.hub_train_split, "valid": cfg.hub_valid_split, "test": cfg.hub_test_split}


def _has_local_train(cfg: DataConfig) -> bool:
    """True if `cfg.root` is a folder holding both sides of the training split."""
    if not cfg.root or not os.path.isdir(cfg.root):
        return False
    return all(
        find_split_file(cfg.root, cfg.train_prefix, lang) is not None
        for lang in (cfg.src_lang, cfg.tgt_lang)
    )


class CorpusSource:
    """Where the three splits of `cfg` come from, decided once (`cfg.source` resolved).

    `kind` is "local" (line-aligned files under `root` with `prefixes`) or "hub" (the Hugging
    Face dataset `cfg.hub_name`). Synthetic tasks are generated on construction and are local.
    `load(split)` returns lists; `stream(split)` returns a `PairStream` that reads lazily.
    """

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.auto = False  # hub chosen by source=auto: errors also say that no local data was found
        if cfg.source == "local":
            if not cfg.root:
                raise DataError("data.source=local needs data.root (or NMT_DATA_ROOT) to be set")
            if not os.path.isdir(cfg.root):
                raise DataError(
                    f"data.root={cfg.root} is not a folder; set NMT_DATA_ROOT or data.root"
                )
            self.kind, self.root, self.prefixes = "local", cfg.root, _local_prefixes(cfg)
        elif cfg.source == "hub":
            if not cfg.hub_name:
                raise DataError("data.source=hub needs data.hub_name (e.g. bentrevett/multi30k)")
            self.kind, self.root, self.prefixes = "hub", None, _hub_splits(cfg)
        elif cfg.source == "auto":
            if _has_local_train(cfg):
                self.kind, self.root, self.prefixes = "local", cfg.root, _local_prefixes(cfg)
            else:
                if not cfg.hub_name:
                    raise DataError(
                        f"{self._no_local()}; set NMT_DATA_ROOT or data.root to the corpus "
                        "folder, or data.hub_name to a Hugging Face dataset"
                    )
                self.kind, self.root, self.prefixes = "hub", None, _hub_splits(cfg)
                self.auto = True
        elif cfg.source == "synthetic":
            from nmt.data.synthetic import write_task

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
            self.kind, self.root, self.prefixes = "local", cfg.root, dict(SYNTHETIC_PREFIXES)
        else:
            raise DataError(f"data.source={cfg.source!r} is not one of auto, local, hub, synthetic")

    def _no_local(self) -> str:
        cfg = self.cfg
        looked = (
            f"{cfg.root}/{cfg.train_prefix}.{{{cfg.src_lang},{cfg.tgt_lang}}}[.gz]"
            if cfg.root
            else "nowhere (data.root is unset)"
        )
        return f"no local data for {cfg.name!r}: looked for {looked}"

    @contextlib.contextmanager
    def _hub_errors(self):
        """In auto mode a hub failure also says where local data was looked for."""
        try:
            yield
        except DataError as err:
            if not self.auto:
                raise
            raise DataError(
                f"{self._no_local()}; set NMT_DATA_ROOT or data.root to the corpus folder, or "
                f"allow network access for hub dataset {self.cfg.hub_name!r} ({err})"
            ) from None

    def _max_lines(self, split: str) -> int | None:
        return self.cfg.max_train_lines if split == "train" else None

    def load(self, split: str) -> Pair:
        """One split as (source lines, target lines), lowercased if `cfg.lowercase`."""
        cfg = self.cfg
        if self.kind == "local":
            src, tgt = load_local_split(
                self.root, self.prefixes[split], cfg.src_lang, cfg.tgt_lang, self._max_lines(split)
            )
        else:
            with self._hub_errors():
                src, tgt = load_hub_split(
                    cfg.hub_name,
                    cfg.hub_config,
                    self.prefixes[split],
                    cfg.src_lang,
                    cfg.tgt_lang,
                    self._max_lines(split),
                )
        if cfg.lowercase or cfg.tokenize:
            src = [normalize(x, cfg.lowercase, cfg.tokenize) for x in src]
            tgt = [normalize(x, cfg.lowercase, cfg.tokenize) for x in tgt]
        return src, tgt

    def stream(self, split: str) -> PairStream:
        """One split as a re-iterable `PairStream`; files are found (or the dataset opened) now."""
        cfg = self.cfg
        max_lines = self._max_lines(split)
        if self.kind == "local":
            src_path, tgt_path = _split_paths(
                self.root, self.prefixes[split], cfg.src_lang, cfg.tgt_lang
            )
            identity: dict[str, Any] = {
                "kind": "local",
                "files": [_file_identity(src_path), _file_identity(tgt_path)],
            }

            def opener(size: int) -> Chunks:
                return _chunked(iter_local_pairs(src_path, tgt_path, max_lines), size)

            label = f"{src_path}, {tgt_path}"
        else:
            with self._hub_errors():
                ds, label = open_hub_split(
                    cfg.hub_name, cfg.hub_config, self.prefixes[split], max_lines
                )
                _text_columns(ds, label, cfg.src_lang, cfg.tgt_lang)  # schema errors now
            identity = {
                "kind": "hub",
                "label": label,
                "fingerprint": getattr(ds, "_fingerprint", None),
                "rows": len(ds),
            }

            def opener(size: int) -> Chunks:
                return iter_hub_chunks(ds, label, cfg.src_lang, cfg.tgt_lang, size)

        identity.update(max_lines=max_lines, lowercase=cfg.lowercase, tokenize=cfg.tokenize)
        return PairStream(label, identity, opener, cfg.lowercase, cfg.tokenize)


def _file_identity(path: Path) -> list:
    """[absolute path, size, mtime in ns]: changes whenever the file is replaced or edited."""
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


class PairStream:
    """A split read lazily in chunks of pairs; every `chunks()` call reads it from the start.

    `identity` is plain data that changes when the underlying files or dataset change (used to
    key caches of the encoded split).
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


def load_corpus(cfg: DataConfig) -> dict[str, Pair]:
    """Load {"train", "valid", "test"} -> (source lines, target lines) as `cfg` describes.

    Applies `cfg.lowercase` to every split and `cfg.max_train_lines` to the training split.
    Reads everything into lists; `prepare_data` streams the training split instead.
    """
    source = CorpusSource(cfg)
    return {split: source.load(split) for split in SPLITS}
