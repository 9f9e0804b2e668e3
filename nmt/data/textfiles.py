"""Local parallel corpora: line-aligned UTF-8 text files, plain or gzip-compressed.

A split is two files `{root}/{prefix}.{lang}[.gz]`, one per side, aligned line by line. Blank
lines are kept (dropping them would misalign the sides); every failure is a one-line
`DataError` naming the file, and the line and column when there is one.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

from nmt.data.errors import DataError

Pair = tuple[list[str], list[str]]  # (source lines, target lines)


def _open_binary(path: Path):
    """Open `path` for binary reading, transparently decompressing `.gz`."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    """One line as strict UTF-8 without the trailing newline/CR (and a leading BOM on line 1)."""
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
    return line


def iter_lines(path: Path) -> Iterator[str]:
    """Yield the lines of `path` decoded as strict UTF-8, without the trailing newline/CR."""
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, start=1):
                yield _decode(raw, path, lineno)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({err})") from None


def read_lines(path: str | Path, max_lines: int | None = None, what: str = "") -> list[str]:
    """Read a plain or `.gz` UTF-8 text file into a list of lines (at most `max_lines`).

    Only the trailing newline / carriage return is removed; blank lines are kept so that the
    two sides of a parallel corpus stay aligned. A missing or unreadable file is a DataError
    naming it, after `what` (e.g. the option that gave the path) when given.
    """
    out: list[str] = []
    if max_lines is not None and max_lines <= 0:
        return out
    try:
        for line in iter_lines(Path(path)):
            out.append(line)
            if max_lines is not None and len(out) >= max_lines:
                break
    except DataError as err:
        if what:
            raise DataError(f"{what} {err}") from None
        raise
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


def split_paths(root: str | Path, prefix: str, src_lang: str, tgt_lang: str) -> tuple[Path, Path]:
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


def load_local_split(
    root: str | Path, prefix: str, src_lang: str, tgt_lang: str, max_lines: int | None = None
) -> Pair:
    """Read the line-aligned files `{root}/{prefix}.{src_lang,tgt_lang}[.gz]`.

    With `max_lines`, at most that many pairs are read (and the line-count check only sees them).
    """
    paths = split_paths(root, prefix, src_lang, tgt_lang)
    src, tgt = (read_lines(p, max_lines) for p in paths)
    if len(src) != len(tgt):
        raise DataError(
            f"line counts differ: {paths[0]} has {len(src)} lines, {paths[1]} has {len(tgt)} lines"
        )
    return src, tgt


def iter_local_pairs(
    src_path: Path, tgt_path: Path, max_lines: int | None = None
) -> Iterator[tuple[str, str]]:
    """Yield the aligned line pairs of two files one at a time (plain or `.gz`).

    Memory use does not depend on the file sizes. A line-count mismatch is found when the
    shorter file ends: the remaining lines of the longer one are counted and a DataError names
    both files and both counts. With `max_lines`, at most that many pairs are read (and the
    check only sees them), as in `load_local_split`.
    """
    src_it, tgt_it = iter_lines(src_path), iter_lines(tgt_path)
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


def file_identity(path: Path) -> list:
    """[absolute path, size, mtime in ns]: changes whenever the file is replaced or edited."""
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]
