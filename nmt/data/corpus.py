"""Reading parallel corpora: local text files (plain or gzip), Hugging Face datasets, synthetic tasks.

Every failure is a `DataError` with a one-line message naming the file (or dataset), the line
when there is one, and what is wrong.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nmt.config import DataConfig

Pair = tuple[list[str], list[str]]
SPLITS = ("train", "valid", "test")
SYNTHETIC_PREFIXES = {"train": "train", "valid": "val", "test": "test"}
SYNTHETIC_SEED = 1234  # synthetic data is the same for every run seed; models vary, data does not


class DataError(ValueError):
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
    root = Path(root)
    paths = []
    for lang in (src_lang, tgt_lang):
        path = find_split_file(root, prefix, lang)
        if path is None:
            tried = ", ".join(str(p) for p in _candidates(root, prefix, lang))
            raise DataError(f"missing split {prefix!r} ({lang}): tried {tried}")
        paths.append(path)
    src, tgt = (read_lines(p, max_lines) for p in paths)
    if len(src) != len(tgt):
        raise DataError(
            f"line counts differ: {paths[0]} has {len(src)} lines, {paths[1]} has {len(tgt)} lines"
        )
    return src, tgt


def _is_saved_dataset(path: Path) -> bool:
    """True if `path` is a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _columns(ds: Any, name: str, src_lang: str, tgt_lang: str) -> Pair:
    """Extract the two text columns from a `datasets.Dataset` with a supported schema."""
    cols = list(ds.column_names)
    if src_lang in cols and tgt_lang in cols:
        src, tgt = ds[src_lang], ds[tgt_lang]
    elif "translation" in cols:
        flat = ds.select_columns(["translation"]).flatten()
        keys = [f"translation.{src_lang}", f"translation.{tgt_lang}"]
        missing = [k for k in keys if k not in flat.column_names]
        if missing:
            raise DataError(
                f"{name}: 'translation' column has keys {[c.split('.', 1)[1] for c in flat.column_names]}, "
                f"expected {src_lang!r} and {tgt_lang!r}"
            )
        src, tgt = flat[keys[0]], flat[keys[1]]
    else:
        raise DataError(
            f"{name}: unsupported schema, columns {cols}; expected columns {src_lang!r} and "
            f"{tgt_lang!r} or a 'translation' dict column"
        )
    return ["" if s is None else s for s in src], ["" if t is None else t for t in tgt]


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
    return _columns(ds, label, src_lang, tgt_lang)


def _load_local(cfg: DataConfig, root: str, prefixes: dict[str, str]) -> dict[str, Pair]:
    """Read the train/valid/test splits from `root` with the given file prefixes."""
    return {
        split: load_local_split(
            root,
            prefixes[split],
            cfg.src_lang,
            cfg.tgt_lang,
            cfg.max_train_lines if split == "train" else None,
        )
        for split in SPLITS
    }


def _load_hub(cfg: DataConfig) -> dict[str, Pair]:
    """Read the train/valid/test splits from the hub dataset `cfg.hub_name`."""
    if not cfg.hub_name:
        raise DataError("data.source=hub needs data.hub_name (e.g. bentrevett/multi30k)")
    splits = {
        "train": cfg.hub_train_split,
        "valid": cfg.hub_valid_split,
        "test": cfg.hub_test_split,
    }
    return {
        split: load_hub_split(
            cfg.hub_name,
            cfg.hub_config,
            hub_split,
            cfg.src_lang,
            cfg.tgt_lang,
            cfg.max_train_lines if split == "train" else None,
        )
        for split, hub_split in splits.items()
    }


def _local_prefixes(cfg: DataConfig) -> dict[str, str]:
    return {"train": cfg.train_prefix, "valid": cfg.valid_prefix, "test": cfg.test_prefix}


def _has_local_train(cfg: DataConfig) -> bool:
    """True if `cfg.root` is a folder holding both sides of the training split."""
    if not cfg.root or not os.path.isdir(cfg.root):
        return False
    return all(
        find_split_file(cfg.root, cfg.train_prefix, lang) is not None
        for lang in (cfg.src_lang, cfg.tgt_lang)
    )


def _load_auto(cfg: DataConfig) -> dict[str, Pair]:
    """Local files when `cfg.root` holds the training split, else the hub; one error if neither."""
    if _has_local_train(cfg):
        return _load_local(cfg, cfg.root, _local_prefixes(cfg))  # type: ignore[arg-type]
    looked = (
        f"{cfg.root}/{cfg.train_prefix}.{{{cfg.src_lang},{cfg.tgt_lang}}}[.gz]"
        if cfg.root
        else "nowhere (data.root is unset)"
    )
    where = f"no local data for {cfg.name!r}: looked for {looked}"
    if not cfg.hub_name:
        raise DataError(
            f"{where}; set NMT_DATA_ROOT or data.root to the corpus folder, or data.hub_name "
            "to a Hugging Face dataset"
        )
    try:
        return _load_hub(cfg)
    except DataError as err:
        raise DataError(
            f"{where}; set NMT_DATA_ROOT or data.root to the corpus folder, or allow network "
            f"access for hub dataset {cfg.hub_name!r} ({err})"
        ) from None


def _load_synthetic(cfg: DataConfig) -> dict[str, Pair]:
    """Generate the synthetic task under `cfg.root` if absent (or stale), then read it."""
    from nmt.data.synthetic import write_task

    if not cfg.root:
        raise DataError("data.source=synthetic needs data.root (the folder to write the task to)")
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
    return _load_local(cfg, cfg.root, SYNTHETIC_PREFIXES)


def load_corpus(cfg: DataConfig) -> dict[str, Pair]:
    """Load {"train", "valid", "test"} -> (source lines, target lines) as `cfg` describes.

    Applies `cfg.lowercase` to every split and `cfg.max_train_lines` to the training split.
    """
    if cfg.source == "local":
        if not cfg.root:
            raise DataError("data.source=local needs data.root (or NMT_DATA_ROOT) to be set")
        if not os.path.isdir(cfg.root):
            raise DataError(f"data.root={cfg.root} is not a folder; set NMT_DATA_ROOT or data.root")
        corpus = _load_local(cfg, cfg.root, _local_prefixes(cfg))
    elif cfg.source == "hub":
        corpus = _load_hub(cfg)
    elif cfg.source == "auto":
        corpus = _load_auto(cfg)
    elif cfg.source == "synthetic":
        corpus = _load_synthetic(cfg)
    else:
        raise DataError(f"data.source={cfg.source!r} is not one of auto, local, hub, synthetic")
    if cfg.lowercase:
        corpus = {
            k: ([s.lower() for s in a], [t.lower() for t in b]) for k, (a, b) in corpus.items()
        }
    return corpus
