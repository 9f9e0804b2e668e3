"""Corpus reading, hub loading, synthetic tasks and `prepare_data` filtering."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import pytest

from nmt.config import Config, ConfigError, DataConfig, RNNConfig, validate
from nmt.data import (
    DataError,
    TokenArray,
    encode_sources,
    load_corpus,
    load_hub_split,
    load_local_split,
    prepare_data,
    read_lines,
)
from nmt.data.sources import (
    SOURCES,
    CorpusSource,
    HubSource,
    LocalSource,
    SyntheticSource,
    open_source,
)
from nmt.data.synthetic import make_task, write_task

EN = ["A man rides a bike.", "Two dogs play.", "", "The end."]
DE = ["Ein Mann fährt Rad.", "Zwei Hunde spielen.", "", "Das Ende."]


def write(path: Path, lines: list[str], gz: bool = False, newline: str = "\n") -> Path:
    """Write lines as UTF-8 text (optionally gzip-compressed)."""
    data = "".join(line + newline for line in lines).encode("utf-8")
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_corpus(root: Path, gz: bool = False, n: int = 1) -> Path:
    """Write train/val/test en-de files (EN/DE repeated n times) under root."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "val", "test"):
        write(root / f"{prefix}.en", EN * n, gz)
        write(root / f"{prefix}.de", DE * n, gz)
    return root


# --- local files ----------------------------------------------------------------------


def test_read_plain_and_gz(tmp_path):
    plain = write(tmp_path / "a.txt", ["x  ", " \t", "ü"], newline="\r\n")
    gz = write(tmp_path / "b.txt", ["x  ", " \t", "ü"], gz=True)
    assert read_lines(plain) == ["x  ", " \t", "ü"]
    assert read_lines(gz) == ["x  ", " \t", "ü"]
    assert read_lines(gz, max_lines=2) == ["x  ", " \t"]


def test_read_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.txt"):
        read_lines(tmp_path / "nope.txt")


def test_invalid_utf8_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.en"
    path.write_bytes(b"fine\nab\xffc\n")
    with pytest.raises(DataError) as err:
        read_lines(path)
    msg = str(err.value)
    assert f"{path}:2:" in msg and "0xff" in msg and "column 3" in msg
    assert "\n" not in msg


def test_load_local_split_plain_and_gz(tmp_path):
    make_corpus(tmp_path / "plain")
    make_corpus(tmp_path / "gz", gz=True)
    for root in (tmp_path / "plain", tmp_path / "gz"):
        src, tgt = load_local_split(root, "val", "en", "de")
        assert src == EN and tgt == DE


def test_mismatched_line_counts(tmp_path):
    write(tmp_path / "train.en", EN)
    write(tmp_path / "train.de", DE[:3], gz=True)
    with pytest.raises(DataError) as err:
        load_local_split(tmp_path, "train", "en", "de")
    msg = str(err.value)
    assert str(tmp_path / "train.en") in msg and str(tmp_path / "train.de.gz") in msg
    assert "4 lines" in msg and "3 lines" in msg


def test_missing_split_names_paths_tried(tmp_path):
    make_corpus(tmp_path)
    with pytest.raises(DataError) as err:
        load_local_split(tmp_path, "dev", "en", "de")
    msg = str(err.value)
    assert str(tmp_path / "dev.en") in msg and str(tmp_path / "dev.en.gz") in msg


def test_load_corpus_local_lowercase_and_max_train_lines(tmp_path):
    make_corpus(tmp_path, n=3)
    cfg = DataConfig(source="local", root=str(tmp_path), lowercase=True, max_train_lines=5)
    corpus = load_corpus(cfg)
    assert set(corpus) == {"train", "valid", "test"}
    assert len(corpus["train"][0]) == 5 and len(corpus["valid"][0]) == 12
    assert corpus["valid"][0][0] == "a man rides a bike."
    assert corpus["test"][1][1] == "zwei hunde spielen."


def test_extra_train_files_follow_the_training_split(tmp_path):
    make_corpus(tmp_path / "c", n=3)
    (tmp_path / "gold").mkdir()
    write(tmp_path / "gold" / "test.en", ["Gold one.", "Gold two."])
    write(tmp_path / "gold" / "test.de", ["Gold eins.", "Gold zwei."], gz=True)
    extra = [str(tmp_path / "gold" / "test")]
    cfg = DataConfig(source="local", root=str(tmp_path / "c"), max_train_lines=5, extra_train=extra)
    stream = open_source(cfg).stream("train")
    src = [x for chunk, _ in stream.chunks(4) for x in chunk]
    assert len(src) == 5 + 2 and src[-2:] == ["Gold one.", "Gold two."]
    assert "gold/test.en" in stream.label
    plain = open_source(DataConfig(source="local", root=str(tmp_path / "c"))).stream("train")
    assert plain.identity != stream.identity  # the encoded split's cache key changes
    assert open_source(cfg).load("valid") == open_source(
        DataConfig(source="local", root=str(tmp_path / "c"))
    ).load("valid")  # only the training split grows
    missing = DataConfig(source="local", root=str(tmp_path / "c"), extra_train=["/nope/x"])
    with pytest.raises(DataError, match="missing split 'x' \\(en\\): tried /nope/x.en"):
        open_source(missing).stream("train")


# --- hub ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets_mod():
    return pytest.importorskip("datasets")


def test_hub_language_columns(tmp_path, datasets_mod):
    ds = datasets_mod.DatasetDict(
        {
            "train": datasets_mod.Dataset.from_dict({"en": EN, "de": DE}),
            "validation": datasets_mod.Dataset.from_dict({"en": EN[:2], "de": DE[:2]}),
        }
    )
    ds.save_to_disk(str(tmp_path / "m30k"))
    src, tgt = load_hub_split(str(tmp_path / "m30k"), None, "validation", "en", "de")
    assert src == EN[:2] and tgt == DE[:2]
    src, tgt = load_hub_split(str(tmp_path / "m30k"), None, "train", "de", "en", max_lines=3)
    assert src == DE[:3] and tgt == EN[:3]
    with pytest.raises(DataError, match="splits found"):
        load_hub_split(str(tmp_path / "m30k"), None, "test", "en", "de")


def test_hub_translation_column(tmp_path, datasets_mod):
    rows = [{"de": d, "en": e} for d, e in zip(DE, EN)]
    rows[1] = {"de": None, "en": EN[1]}
    ds = datasets_mod.DatasetDict({"test": datasets_mod.Dataset.from_dict({"translation": rows})})
    ds.save_to_disk(str(tmp_path / "wmt"))
    src, tgt = load_hub_split(str(tmp_path / "wmt"), "de-en", "test", "de", "en")
    assert src == [DE[0], "", DE[2], DE[3]] and tgt == EN
    # the same schema as parquet files, the hub's own layout
    folder = tmp_path / "pq"
    folder.mkdir()
    ds["test"].to_parquet(str(folder / "test-00000-of-00001.parquet"))
    src, tgt = load_hub_split(
        str(folder), None, "test", "en", "de", cache_dir=str(tmp_path / "cache")
    )
    assert src == EN and tgt[0] == DE[0]


def test_hub_unknown_schema_names_columns(tmp_path, datasets_mod):
    datasets_mod.Dataset.from_dict({"text": ["a"], "label": [0]}).save_to_disk(str(tmp_path / "x"))
    with pytest.raises(DataError, match=r"\['text', 'label'\]"):
        load_hub_split(str(tmp_path / "x"), None, "train", "en", "de")


def test_auto_prefers_local_then_hub(tmp_path, datasets_mod):
    make_corpus(tmp_path / "local")
    cfg = DataConfig(source="auto", root=str(tmp_path / "local"), hub_name="unused/never")
    assert load_corpus(cfg)["train"] == (EN, DE)
    hub = tmp_path / "hub"
    datasets_mod.DatasetDict(
        {
            s: datasets_mod.Dataset.from_dict({"en": EN, "de": DE})
            for s in ("train", "validation", "test")
        }
    ).save_to_disk(str(hub))
    cfg = DataConfig(source="auto", root=str(tmp_path / "absent"), hub_name=str(hub))
    assert load_corpus(cfg)["test"] == (EN, DE)


def test_auto_without_data_gives_one_clear_error(tmp_path, monkeypatch, datasets_mod):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets_mod, "load_dataset", offline)
    cfg = DataConfig(source="auto", root=str(tmp_path / "absent"), hub_name="bentrevett/multi30k")
    with pytest.raises(DataError) as err:
        load_corpus(cfg)
    msg = str(err.value)
    assert str(tmp_path / "absent") in msg and "NMT_DATA_ROOT" in msg and "data.root" in msg
    assert "bentrevett/multi30k" in msg and "\n" not in msg
    cfg = DataConfig(source="auto", root=None, hub_name=None)
    with pytest.raises(DataError, match="NMT_DATA_ROOT"):
        load_corpus(cfg)


# --- the table of sources ------------------------------------------------------------


def test_each_source_name_builds_its_class(tmp_path):
    make_corpus(tmp_path / "c")
    local = dict(root=str(tmp_path / "c"), hub_name="some/dataset")
    assert type(open_source(DataConfig(source="local", **local))) is LocalSource
    assert type(open_source(DataConfig(source="auto", **local))) is LocalSource
    assert type(open_source(DataConfig(source="hub", **local))) is HubSource
    auto = open_source(DataConfig(source="auto", root=str(tmp_path / "absent"), hub_name="x/y"))
    assert type(auto) is HubSource and "absent" in auto.no_local
    syn = DataConfig(source="synthetic", root=str(tmp_path / "s"), task_size=60)
    assert type(open_source(syn)) is SyntheticSource and (tmp_path / "s" / "val.en").is_file()
    with pytest.raises(DataError, match="is not one of auto, local, hub, synthetic"):
        open_source(DataConfig(source="ftp"))
    for cfg, key in [(DataConfig(source="local"), "data.root"), (DataConfig(source="hub"), "hub")]:
        with pytest.raises(DataError, match=key):
            open_source(cfg)


def test_config_allows_exactly_the_sources_in_the_table():
    for name in SOURCES:
        validate(Config(data=DataConfig(source=name), model=RNNConfig()))
    with pytest.raises(ConfigError) as err:
        validate(Config(data=DataConfig(source="nope")))
    allowed = str(err.value).split("choose one of ", 1)[1]
    assert set(allowed.split(", ")) == set(SOURCES)


def test_a_new_source_is_one_class_and_one_entry(tmp_path, monkeypatch):
    class Upper(CorpusSource):
        def _load(self, split, max_lines):
            return [split.upper()] * (max_lines or 2), [split] * (max_lines or 2)

    monkeypatch.setitem(SOURCES, "upper", Upper)
    cfg = DataConfig(source="upper", lowercase=True, max_train_lines=3)
    corpus = load_corpus(cfg)
    assert corpus["train"] == (["train"] * 3, ["train"] * 3)  # max_train_lines, lowercase
    assert corpus["valid"] == (["valid"] * 2, ["valid"] * 2)


# --- synthetic ------------------------------------------------------------------------


def test_make_task_reverse_and_copy():
    src, tgt = make_task("reverse", 20, alphabet=5, min_len=2, max_len=4, seed=0)
    assert len(src) == 20
    for s, t in zip(src, tgt):
        assert t.split() == s.split()[::-1] and 2 <= len(s.split()) <= 4
        assert all(sym in {f"a{k}" for k in range(5)} for sym in s.split())
    src2, tgt2 = make_task("copy", 20, alphabet=5, min_len=2, max_len=4, seed=0)
    assert src2 == src and tgt2 == src
    assert make_task("copy", 20, 5, 2, 4, seed=1)[0] != src


def test_write_task_files_and_reuse(tmp_path):
    root = tmp_path / "rev"
    assert write_task(root, "reverse", 100, 8, 3, 6, 7, "src", "tgt") is True
    sizes = {p: len(read_lines(root / f"{p}.src")) for p in ("train", "val", "test")}
    assert sizes == {"train": 100, "val": 50, "test": 50}
    assert read_lines(root / "val.src") != read_lines(root / "test.src")
    stamp = (root / "train.src").stat().st_mtime_ns
    assert write_task(root, "reverse", 100, 8, 3, 6, 7, "src", "tgt") is False
    assert (root / "train.src").stat().st_mtime_ns == stamp
    assert write_task(root, "copy", 100, 8, 3, 6, 7, "src", "tgt") is True  # stale -> rewritten
    cfg = DataConfig(
        source="synthetic", root=str(tmp_path / "new"), src_lang="src", tgt_lang="tgt", task_size=60
    )
    corpus = load_corpus(cfg)
    assert len(corpus["train"][0]) == 60 and len(corpus["valid"][0]) == 50
    assert corpus["train"][1][0].split() == corpus["train"][0][0].split()[::-1]


# --- prepare_data ---------------------------------------------------------------------


def test_prepare_data_drops_and_counts(tmp_path, caplog):
    root = tmp_path / "c"
    root.mkdir()
    good_en = [f"the cat number {i} sat on the mat" for i in range(30)]
    good_de = [f"die katze nummer {i} sass auf der matte" for i in range(30)]
    long_en = " ".join(["word"] * 40)
    train_en = good_en + ["", "  \t", "hello", long_en, "\x00\u200b"]
    train_de = good_de + ["hallo", "x", " ", "kurz", "ok"]
    write(root / "train.en", train_en)
    write(root / "train.de", train_de)
    for prefix in ("val", "test"):
        write(root / f"{prefix}.en", ["", long_en, "the cat"])
        write(root / f"{prefix}.de", ["", "kurz", "die katze"])
    cfg = DataConfig(source="local", root=str(root), max_len=20, vocab_size=60, spm_type="word")
    log = logging.getLogger("test.data")
    with caplog.at_level(logging.INFO, logger="test.data"):
        bundle = prepare_data(cfg, tmp_path / "run", None, seed=1, log=log)
    assert "train: kept 30 of 35 pairs (dropped 4 empty, 1 longer than max_len=20)" in caplog.text
    assert (tmp_path / "run" / "spm.model").is_file()
    assert len(bundle.train) == 30
    # the training split is streamed to memory-mapped ids: its raw text is not kept
    assert bundle.train.src_text == [] and bundle.train.tgt_text == []
    assert bundle.tokenizer.decode_src(bundle.train.src.tolist()) == good_en
    assert bundle.tokenizer.decode_tgt(bundle.train.tgt.tolist()) == good_de
    assert len(bundle.valid) == 3 and len(bundle.test) == 3  # valid/test keep every line
    assert bundle.valid.src[0].size == 0 and bundle.valid.src_text[1] == long_en
    assert bundle.train.src.lengths.max() <= 20 and bundle.train.src.data.dtype.name == "int32"
    batch = bundle.train.batch([0, 1])
    assert batch.src.shape[0] == 2
    # resume: an existing tokenizer is reused as is
    again = prepare_data(cfg, tmp_path / "other", bundle.tokenizer, seed=2, log=log)
    assert again.tokenizer is bundle.tokenizer and not (tmp_path / "other" / "spm.model").exists()
    assert again.train.src.tolist() == bundle.train.src.tolist()
    enc = encode_sources(bundle.tokenizer, ["The Cat"], lowercase=True)
    assert isinstance(enc, TokenArray) and enc[0].tolist() == bundle.valid.src[2].tolist()
    # data.tokenize splits punctuation off as the training text was
    split = encode_sources(bundle.tokenizer, ["The cat."], lowercase=True, tokenize=True)
    assert split[0].tolist() == bundle.tokenizer.encode_src(["the cat ."])[0]
    assert split[0].tolist() != encode_sources(bundle.tokenizer, ["The cat."], True)[0].tolist()


# --- real corpus ----------------------------------------------------------------------


def test_real_multi30k_train():
    root = os.environ.get("NMT_DATA_ROOT")
    if not root or not os.path.isdir(os.path.join(root, "multi30k")):
        pytest.skip("NMT_DATA_ROOT is unset or has no multi30k/ folder (set it to ../shared/data)")
    src, tgt = load_local_split(os.path.join(root, "multi30k"), "train", "en", "de")
    assert len(src) == len(tgt) == 29_000
    assert all(isinstance(s, str) for s in src[:10]) and src[0].strip()
