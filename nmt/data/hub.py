"""Hugging Face datasets as parallel corpora: hub ids, `save_to_disk` folders, data-file folders.

Two schemas are understood: one column per language (`en`, `de`), or a `translation` column of
{lang: text} dicts. Splits stay Arrow-backed (`open_hub_split`) and are read in record batches
(`iter_hub_chunks`), so a large dataset never becomes Python lists as a whole. `datasets` is
imported only when a hub split is opened (it is slow to import).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nmt.data.errors import DataError
from nmt.data.textfiles import Pair


def _is_saved_dataset(path: Path) -> bool:
    """True if `path` is a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def text_columns(ds: Any, name: str, src_lang: str, tgt_lang: str) -> tuple[Any, str, str]:
    """(dataset, source column, target column) for a `datasets.Dataset` with a supported schema.

    A `translation` dict column is flattened (an Arrow operation, no Python lists).
    """
    cols = list(ds.column_names)
    if src_lang in cols and tgt_lang in cols:
        return ds, src_lang, tgt_lang
    if "translation" in cols:
        flat = ds.select_columns(["translation"]).flatten()
        keys = [f"translation.{src_lang}", f"translation.{tgt_lang}"]
        if any(k not in flat.column_names for k in keys):
            found = [c.split(".", 1)[1] for c in flat.column_names]
            raise DataError(
                f"{name}: 'translation' column has keys {found}, "
                f"expected {src_lang!r} and {tgt_lang!r}"
            )
        return flat, keys[0], keys[1]
    raise DataError(
        f"{name}: unsupported schema, columns {cols}; expected columns {src_lang!r} and "
        f"{tgt_lang!r} or a 'translation' dict column"
    )


def _texts(column: Any) -> list[str]:
    """A text column as a list of strings (missing values become "")."""
    return ["" if s is None else s for s in column]


def _load_saved(path: Path, name: str, split: str) -> Any:
    """One split of a `save_to_disk` folder (a DatasetDict, or a Dataset used for any split)."""
    import datasets  # slow import; only needed here

    loaded = datasets.load_from_disk(str(path))
    if not isinstance(loaded, datasets.DatasetDict):
        return loaded
    if split not in loaded:
        raise DataError(f"{name}: no split {split!r}; splits found: {sorted(loaded)}")
    return loaded[split]


def _load_dataset(name: str, config: str | None, split: str, cache_dir: str | None, label: str):
    """`datasets.load_dataset`, with any failure turned into a one-line DataError."""
    import datasets  # slow import; only needed here

    try:
        return datasets.load_dataset(name, config, split=split, cache_dir=cache_dir)
    except DataError:
        raise
    except Exception as err:  # network, missing dataset/config/split: one line, named
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"cannot load {label}: {type(err).__name__}: {first}") from None


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
    path = Path(name)
    label = f"{name}[{split}]" if config is None else f"{name}/{config}[{split}]"
    if path.is_dir() and _is_saved_dataset(path):
        ds = _load_saved(path, name, split)
    else:
        ds = _load_dataset(name, config, split, cache_dir, label)
    if max_lines is not None and max_lines < len(ds):
        ds = ds.select(range(max(max_lines, 0)))
    return ds, label


def iter_hub_chunks(ds: Any, label: str, src_lang: str, tgt_lang: str, size: int) -> Iterator[Pair]:
    """Read a hub split in batches of `size` pairs (Arrow record batches; None becomes "")."""
    ds, a, b = text_columns(ds, label, src_lang, tgt_lang)
    for batch in ds.iter(batch_size=size):
        yield _texts(batch[a]), _texts(batch[b])


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
    ds, a, b = text_columns(ds, label, src_lang, tgt_lang)
    return _texts(ds[a]), _texts(ds[b])
