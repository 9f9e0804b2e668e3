"""Streaming preprocessing: lazy reading, reservoir sampling, memory-mapped ids, caching, errors."""

from __future__ import annotations

import gzip
import logging
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import nmt.data.prepare
from nmt.config import DataConfig
from nmt.data import DataError, TokenArray, TokenArrayWriter, iter_local_pairs, prepare_data
from nmt.data.stream import Reservoir

LOG = logging.getLogger("test.streaming")
WORDS = "the a cat dog man woman sees runs on in park street red big small".split()
WORTE = "der die das katze hund mann frau sieht läuft im park straße rot groß klein".split()


def corpus_lines(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for _ in range(n):
        idx = rng.integers(0, len(WORDS), size=int(rng.integers(2, 9)))
        src.append(" ".join(WORDS[i] for i in idx))
        tgt.append(" ".join(WORTE[i] for i in idx))
    return src, tgt


def write(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, compresslevel=1))
    else:
        path.write_bytes(data)
    return path


def make_corpus(root: Path, n: int, gz: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    src, tgt = corpus_lines(n)
    write(root / "train.en", src, gz)
    write(root / "train.de", tgt, gz)
    for prefix in ("val", "test"):
        s, t = corpus_lines(20, seed=7)
        write(root / f"{prefix}.en", s)
        write(root / f"{prefix}.de", t)
    return root


def config(root: Path, **kw) -> DataConfig:
    base = dict(source="local", root=str(root), spm_type="word", vocab_size=40, max_len=6)
    base.update(kw)
    return DataConfig(**base)


# --- on-disk token arrays ------------------------------------------------------------------


def test_token_array_writer_round_trip_is_memory_mapped(tmp_path):
    writer = TokenArrayWriter(tmp_path / "x")
    writer.append(TokenArray.from_lists([[1, 2], [3]]))
    writer.append(TokenArray.from_lists([]))
    writer.append(TokenArray.from_lists([[], [4, 5, 6]]))
    arr = writer.close()
    assert arr.tolist() == [[1, 2], [3], [], [4, 5, 6]]
    assert isinstance(arr.data.base, np.memmap) and isinstance(arr.offsets.base, np.memmap)
    assert not arr.data.flags.writeable
    assert np.load(tmp_path / "x.offsets.npy").tolist() == [0, 2, 3, 3, 6]
    assert TokenArray.load(tmp_path / "x", mmap=False).tolist() == arr.tolist()
    assert TokenArrayWriter(tmp_path / "empty").close().tolist() == []


# --- reading ---------------------------------------------------------------------------------


def test_iter_local_pairs_plain_gz_and_mismatch(tmp_path):
    a = write(tmp_path / "a.en", ["1", "2", "3", "4"], gz=True)
    b = write(tmp_path / "b.de", ["eins", "zwei", "drei"])
    assert list(iter_local_pairs(a, b, max_lines=3))[-1] == ("3", "drei")  # check sees 3 pairs
    with pytest.raises(DataError) as err:
        list(iter_local_pairs(a, b))
    msg = str(err.value)
    assert f"{a} has 4 lines" in msg and f"{b} has 3 lines" in msg and "\n" not in msg
    with pytest.raises(DataError, match=f"{a} has 4 lines, .* has 5 lines"):
        list(iter_local_pairs(a, write(tmp_path / "c.de", list("abcde"))))


# --- sampling --------------------------------------------------------------------------------


def test_reservoir_keeps_order_under_the_cap_and_is_uniform_and_deterministic():
    small = Reservoir(10, seed=0)
    small.extend(["a", "b"])
    small.extend(["c"])
    assert small.items == ["a", "b", "c"] and small.seen == 3
    items = [str(i) for i in range(50)]
    counts = dict.fromkeys(items, 0)
    for trial in range(300):
        res = Reservoir(10, seed=trial)
        for start in range(0, 50, 7):  # uneven chunks
            res.extend(items[start : start + 7])
        assert len(res.items) == 10 and len(set(res.items)) == 10 and res.seen == 50
        for x in res.items:
            counts[x] += 1
    assert all(25 <= c <= 100 for c in counts.values()), counts  # expected 60 each
    again = Reservoir(10, seed=5)
    again.extend(items)
    other = Reservoir(10, seed=5)
    for start in range(0, 50, 7):
        other.extend(items[start : start + 7])
    assert again.items == other.items  # chunking does not change the sample


# --- prepare_data ------------------------------------------------------------------------------


def test_prepare_data_streams_to_memmaps_and_reuses(tmp_path):
    root = make_corpus(tmp_path / "c", 300, gz=True)
    cfg = config(root)
    out = tmp_path / "run"
    bundle = prepare_data(cfg, out, None, seed=1, log=LOG)
    train = bundle.train
    assert isinstance(train.src.data.base, np.memmap) and isinstance(
        train.tgt.offsets.base, np.memmap
    )
    assert train.src_text == [] and len(bundle.valid.src_text) == 20  # valid/test keep text
    folder = Path(bundle.stats["train_dir"])
    assert folder.parent == out / "data" and sorted(p.name for p in folder.glob("*.npy")) == [
        "train.src.ids.npy",
        "train.src.offsets.npy",
        "train.tgt.ids.npy",
        "train.tgt.offsets.npy",
    ]
    s = bundle.stats
    assert (
        s["n_read"] == 300 and s["n_kept"] + s["n_long"] + s["n_empty"] == 300 and s["n_long"] > 0
    )
    assert train.src.lengths.max() <= 6 and train.tgt.lengths.max() <= 6
    assert not s["tokenizer_cached"] and not s["train_cached"]
    # the same folder and settings: tokenizer and ids are reused
    again = prepare_data(cfg, out, None, seed=1, log=LOG)
    assert again.stats["tokenizer_cached"] and again.stats["train_cached"]
    assert again.tokenizer.to_dict() == bundle.tokenizer.to_dict()
    assert again.train.src.tolist() == train.src.tolist()
    # another filter: the tokenizer is reused, the ids are encoded again (old ones removed)
    longer = prepare_data(config(root, max_len=9), out, None, seed=1, log=LOG)
    assert longer.stats["tokenizer_cached"] and not longer.stats["train_cached"]
    assert longer.stats["n_kept"] > s["n_kept"] and not folder.exists()
    # another vocabulary: a new tokenizer
    assert not prepare_data(config(root, vocab_size=30), out, None, 1, LOG).stats[
        "tokenizer_cached"
    ]
    # a changed corpus file is noticed
    src, tgt = corpus_lines(300, seed=3)
    write(root / "train.en", src, gz=True)
    write(root / "train.de", tgt, gz=True)
    changed = prepare_data(config(root, vocab_size=30), out, None, 1, LOG)
    assert not changed.stats["tokenizer_cached"] and not changed.stats["train_cached"]
    assert not list((out / "data").glob(".tmp-*"))


def test_streaming_errors_name_file_and_line(tmp_path):
    root = make_corpus(tmp_path / "c", 50)
    (root / "train.en").write_bytes((root / "train.en").read_bytes() + b"ok\nbad \xfe line\n")
    (root / "train.de").write_bytes((root / "train.de").read_bytes() + b"gut\nschlecht\n")
    out = tmp_path / "run"
    for tokenizer in (
        None,
        prepare_data(config(make_corpus(tmp_path / "ok", 50)), out, None, 1, LOG).tokenizer,
    ):
        with pytest.raises(DataError, match=rf"{root / 'train.en'}:52: invalid UTF-8 \(byte 0xfe"):
            prepare_data(config(root), out, tokenizer, 1, LOG)
    (root / "train.en").write_bytes(b"".join(f"line {i}\n".encode() for i in range(51)))
    with pytest.raises(DataError, match=r"train.en has 51 lines, .*train.de has 52 lines"):
        prepare_data(config(root), tmp_path / "run2", None, 1, LOG)
    assert not list((out / "data").glob(".tmp-*"))  # partial encodings are removed


def test_empty_training_split(tmp_path):
    root = make_corpus(tmp_path / "c", 1)
    write(root / "train.en", [])
    write(root / "train.de", [])
    with pytest.raises(DataError, match=r"train\.en, .*train\.de: no sentence pairs"):
        prepare_data(config(root), tmp_path / "run", None, 1, LOG)


def test_hub_dataset_is_streamed_in_batches(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    src, tgt = corpus_lines(120)
    rows = [{"en": s, "de": t} for s, t in zip(src, tgt)]
    rows[5] = {"en": None, "de": tgt[5]}
    split = datasets.Dataset.from_dict({"translation": rows})
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(
        str(tmp_path / "hub")
    )
    monkeypatch.setattr(nmt.data.prepare, "CHUNK", 32)
    cfg = DataConfig(source="hub", hub_name=str(tmp_path / "hub"), spm_type="word", vocab_size=40)
    bundle = prepare_data(cfg, tmp_path / "run", None, 1, LOG)
    assert bundle.stats["n_read"] == 120 and bundle.stats["n_empty"] == 1
    assert isinstance(bundle.train.src.data.base, np.memmap) and len(bundle.test.src_text) == 120
    assert bundle.tokenizer.decode_src([bundle.train.src[0].tolist()]) == [src[0]]


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    """Python/NumPy peak allocations of prepare_data (sampling, tokenizer, encoding) are flat in
    the corpus size: a 10x larger corpus may not need more than a little extra."""
    monkeypatch.setattr(nmt.data.prepare, "CHUNK", 500)
    small = make_corpus(tmp_path / "small", 2_000)
    large = make_corpus(tmp_path / "large", 20_000)
    cfg = dict(spm_train_lines=300)
    peaks = [
        _peak_bytes(
            lambda r=r: prepare_data(config(r, **cfg), tmp_path / f"run-{r.name}", None, 1, LOG)
        )
        for r in (small, large)
    ]
    assert peaks[1] < 1.3 * peaks[0] + 256 * 1024, peaks
    assert (
        os.path.getsize(next((tmp_path / "run-large" / "data").glob("train-*/train.src.ids.npy")))
        > 0
    )
