"""Tests for nmt.align: talp parsing, AER scoring, subword aggregation, extraction,
symmetrisation, direction handling, the eflomal baseline and the nmt-align command."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from nmt.align import (
    AlignError,
    GoldAlignment,
    aggregate_to_words,
    check_bounds,
    eflomal_align,
    extract_argmax,
    extract_threshold,
    flip,
    forced_attention,
    format_talp,
    gold_is_flipped,
    main,
    merge_pieces,
    parse_talp_line,
    piece_word_ids,
    read_talp,
    score_alignments,
    simple_tokenize,
    symmetrise,
    word_attention,
)


# --- talp and scoring ------------------------------------------------------------------------
def test_parse_talp_line_sure_and_possible_one_based():
    sure, possible = parse_talp_line("1-1 2p3 3-2 \n")
    assert sure == {(0, 0), (2, 1)}
    assert possible == {(0, 0), (2, 1), (1, 2)}  # P includes S
    assert parse_talp_line("") == (set(), set())
    with pytest.raises(AlignError, match="line 7"):
        parse_talp_line("1-1 2x3", 7)
    with pytest.raises(AlignError):
        parse_talp_line("0-1")


def test_format_talp_round_trip(tmp_path):
    line = format_talp({(0, 0), (2, 1)}, {(0, 0), (1, 2)})
    assert line == "1-1 3-2 2p3"
    (tmp_path / "g.talp").write_text(line + "\n\n")
    gold = read_talp(tmp_path / "g.talp")
    assert len(gold) == 2
    assert gold.sure[0] == {(0, 0), (2, 1)} and gold.possible[0] == {(0, 0), (2, 1), (1, 2)}
    assert gold.sure[1] == set()


def test_gold_against_itself_has_zero_aer():
    gold = GoldAlignment([{(0, 0), (1, 2)}, {(0, 1)}], [{(0, 0), (1, 2), (2, 2)}, {(0, 1), (1, 1)}])
    for predicted in (gold.sure, gold.possible):
        r = score_alignments(predicted, gold.sure, gold.possible)
        assert r["aer"] == 0.0
        assert r["precision"] == 1.0 and r["recall"] == 1.0


def test_hand_computed_aer():
    sure = [{(0, 0), (1, 1)}]
    possible = [{(1, 2)}]  # scoring adds S to P
    predicted = [{(0, 0), (1, 2), (2, 2)}]
    r = score_alignments(predicted, sure, possible)
    # |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2 -> AER = 1 - 3/5
    assert r["aer"] == pytest.approx(0.4)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(0.5)
    assert r["links"] == 3 and r["sure"] == 2
    empty = score_alignments([set()], sure, possible)
    assert empty["aer"] == 1.0 and empty["precision"] == 0.0 and empty["recall"] == 0.0
    with pytest.raises(AlignError):
        score_alignments([set(), set()], sure, possible)


# --- subwords to words -----------------------------------------------------------------------
def test_piece_word_ids_and_merge():
    pieces = ["▁wir", "▁glaub", "en", "▁", ",", "▁nicht", "</s>"]
    assert piece_word_ids(pieces) == [0, 1, 1, 2, 2, 3, 4]
    assert merge_pieces(pieces) == ["wir", "glauben", ",", "nicht", "</s>"]
    assert piece_word_ids(["x", "▁y", "z"]) == [0, 1, 1]  # first piece always starts a word
    assert piece_word_ids([]) == []


# Known segmentation: source "das häuschen" = ▁das ▁häus chen; target "the little house" =
# ▁the ▁little ▁ho use. Rows: target pieces then EOS; columns: source pieces then </s>.
SRC_PIECES = ["▁das", "▁häus", "chen"]
TGT_PIECES = ["▁the", "▁little", "▁ho", "use"]
ATT = np.array(
    [
        [0.7, 0.1, 0.1, 0.1],  # the
        [0.1, 0.2, 0.6, 0.1],  # little
        [0.0, 0.5, 0.3, 0.2],  # ho
        [0.1, 0.3, 0.5, 0.1],  # use
        [0.0, 0.0, 0.0, 1.0],  # EOS (dropped)
    ]
)
WORDS = np.array(
    [
        [0.7, 0.2],  # the:    das, häus+chen (summed over source pieces)
        [0.1, 0.8],  # little
        [0.05, 0.8],  # house: mean of ho [0.0, 0.8] and use [0.1, 0.8]
    ]
)


def test_subword_to_word_aggregation_on_known_segmentation():
    w = word_attention(ATT, SRC_PIECES, TGT_PIECES)
    np.testing.assert_allclose(w, WORDS, atol=1e-12)
    direct = aggregate_to_words(ATT[:4, :3], piece_word_ids(SRC_PIECES), piece_word_ids(TGT_PIECES))
    np.testing.assert_allclose(direct, WORDS, atol=1e-12)
    renorm = word_attention(ATT, SRC_PIECES, TGT_PIECES, renormalize=True)
    np.testing.assert_allclose(renorm.sum(axis=1), 1.0)


def test_aggregation_with_truncated_source_gives_zero_columns():
    # the model only saw the first two source pieces (+ </s>)
    att = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    w = word_attention(att[:, :], ["▁a", "▁b", "▁c"], ["▁x"])
    np.testing.assert_allclose(w, [[0.6, 0.3, 0.0]])


def test_argmax_and_threshold_extraction():
    assert extract_argmax(WORDS) == {(0, 0), (1, 1), (1, 2)}  # (source word, target word)
    assert extract_threshold(WORDS, 0.3) == {(0, 0), (1, 1), (1, 2)}
    assert extract_threshold(WORDS, 0.15) == {(0, 0), (1, 0), (1, 1), (1, 2)}
    assert extract_argmax(np.zeros((2, 3))) == set()  # rows without weight give no link
    assert extract_argmax(np.zeros((0, 0))) == set()


def test_symmetrise():
    fwd = {(0, 0), (1, 1), (0, 1)}
    rev = {(0, 0), (1, 1)}
    assert symmetrise(fwd, rev, "intersection") == {(0, 0), (1, 1)}
    assert symmetrise(fwd, rev, "union") == fwd
    # (0, 1) joins two already aligned words: grow-diag-final leaves it out
    assert symmetrise(fwd, rev, "grow-diag-final") == {(0, 0), (1, 1)}
    # (2, 1) neighbours (1, 1) and covers unaligned source word 2; then (2, 2) diagonal
    assert symmetrise({(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1), (2, 2)}) == {
        (0, 0),
        (1, 1),
        (2, 1),
        (2, 2),
    }
    # final step: a far link covering an unaligned target word is added
    assert symmetrise({(0, 0), (0, 5)}, {(0, 0)}) == {(0, 0), (0, 5)}
    with pytest.raises(AlignError):
        symmetrise(fwd, rev, "grow")


def test_direction_flip():
    assert gold_is_flipped("de-en", "de", "en") is False
    assert gold_is_flipped("de-en", "en", "de") is True
    assert gold_is_flipped("src-tgt", "x", "y") is False
    assert gold_is_flipped("tgt-src", "x", "y") is True
    with pytest.raises(AlignError, match="does not match"):
        gold_is_flipped("de-en", "fr", "en")
    with pytest.raises(AlignError):
        gold_is_flipped("deen", "de", "en")
    # gold German-first; an en->de model predicts (English word, German word) links
    gold = GoldAlignment([{(0, 1), (2, 0)}], [{(0, 1), (2, 0), (1, 1)}])
    pred_de_en = [{(0, 1), (1, 0)}]
    pred_en_de = [flip(pred_de_en[0])]
    a = score_alignments(pred_de_en, gold.sure, gold.possible)
    g = gold.flipped()
    b = score_alignments(pred_en_de, g.sure, g.possible)
    assert a == b and a["aer"] == pytest.approx(1 - (1 + 1) / (2 + 2))
    assert g.possible[0] == {(1, 0), (0, 2), (1, 1)}


def test_check_bounds():
    gold = GoldAlignment([{(0, 2)}], [{(0, 2)}])
    check_bounds(gold, [1], [3])
    with pytest.raises(AlignError, match="gold line 1"):
        check_bounds(gold, [3], [1])


def test_simple_tokenize_matches_gold_style():
    assert simple_tokenize("It's a Test, isn't it? 1,000.5 cherry-pick.") == (
        "it 's a test , isn 't it ? 1,000.5 cherry-pick ."
    )
    assert simple_tokenize("'Legal drugs' (tranquillizers)") == "' legal drugs ' ( tranquillizers )"
    assert simple_tokenize("Daß wir „Rosinen“ picken!") == "daß wir „ rosinen “ picken !"


# --- eflomal -------------------------------------------------------------------------------------
def _copy_corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Source words w0..w29, target words v0..v29, aligned one to one on the diagonal."""
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        ids = [rng.randrange(30) for _ in range(rng.randint(3, 8))]
        src.append(" ".join(f"w{i}" for i in ids))
        tgt.append(" ".join(f"v{i}" for i in ids))
    return src, tgt


def test_eflomal_on_random_text_yields_links():
    rng = random.Random(1)
    src = [" ".join(f"a{rng.randrange(20)}" for _ in range(rng.randint(2, 6))) for _ in range(60)]
    tgt = [" ".join(f"b{rng.randrange(20)}" for _ in range(rng.randint(2, 6))) for _ in range(60)]
    src[3] = ""  # an empty side gets no links and does not break training
    links = eflomal_align(src, tgt, method="intersection")
    assert len(links) == 60 and links[3] == set()
    assert sum(len(x) for x in links) > 0
    for s_line, t_line, x in zip(src, tgt, links):
        assert all(i < len(s_line.split()) and j < len(t_line.split()) for i, j in x)
    gold = [{(0, 0)} for _ in src]
    r = score_alignments(links, gold, gold)
    assert 0.0 <= r["aer"] <= 1.0


def test_eflomal_on_copy_corpus_has_low_aer():
    train_src, train_tgt = _copy_corpus(300)
    src, tgt = _copy_corpus(20, seed=5)
    links = eflomal_align(src, tgt, train_src, train_tgt)
    gold = [{(i, i) for i in range(len(s.split()))} for s in src]
    r = score_alignments(links, gold, gold)
    assert r["aer"] < 0.15, r


def test_nmt_align_eflomal_only_cli(tmp_path, capsys):
    train_src, train_tgt = _copy_corpus(200)
    src, tgt = _copy_corpus(10, seed=7)
    with gzip.open(tmp_path / "train.xx.gz", "wt", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in train_src))
    (tmp_path / "train.yy").write_text("".join(t + "\n" for t in train_tgt))
    (tmp_path / "test.xx").write_text("".join(s + "\n" for s in src))
    (tmp_path / "test.yy").write_text("".join(t + "\n" for t in tgt))
    # gold in yy-xx order (target index first): the direction comes from the file suffixes
    gold = [" ".join(f"{i + 1}-{i + 1}" for i in range(len(s.split()))) for s in src]
    (tmp_path / "gold.talp").write_text("".join(g + "\n" for g in gold))
    out = tmp_path / "report.json"
    rc = main(
        [
            "--src", str(tmp_path / "test.xx"), "--tgt", str(tmp_path / "test.yy"),
            "--gold", str(tmp_path / "gold.talp"), "--gold-order", "yy-xx", "--eflomal",
            "--train-src", str(tmp_path / "train.xx.gz"), "--train-tgt", str(tmp_path / "train.yy"),
            "--json", str(out), "--links-out", str(tmp_path / "links"),
        ]
    )  # fmt: skip
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["direction"] == "xx->yy" and report["eflomal_train_pairs"] == 200
    (name,) = report["results"]
    assert name.startswith("eflomal") and report["results"][name]["aer"] < 0.2
    assert "AER" in capsys.readouterr().out
    assert len((tmp_path / "links" / "eflomal_grow-diag-final.talp").read_text().splitlines()) == 10


def test_nmt_align_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--src", "a", "--tgt", "b", "--gold", "c"])  # neither checkpoint nor --eflomal
    assert main(["--src", str(tmp_path / "nope"), "--tgt", "b", "--gold", "c", "--eflomal"]) == 2
    assert "no such file" in capsys.readouterr().err


# --- end to end on the tiny trained run ---------------------------------------------------------
def _reverse_gold(run: Path, tmp: Path, n: int = 6) -> tuple[Path, Path, Path, list[str]]:
    data = run.parent / "data"
    src = (data / "test.src").read_text().splitlines()[:n]
    tgt = (data / "test.tgt").read_text().splitlines()[:n]
    gold = []
    for s in src:
        k = len(s.split())
        gold.append(" ".join(f"{i + 1}-{k - i}" for i in range(k)))  # reversed diagonal
    paths = tmp / "test.src", tmp / "test.tgt", tmp / "gold.talp"
    for p, lines in zip(paths, (src, tgt, gold)):
        p.write_text("".join(line + "\n" for line in lines))
    return (*paths, src)


def test_nmt_align_end_to_end_on_trained_run(trained_run, tmp_path, capsys):
    src, tgt, gold, lines = _reverse_gold(trained_run, tmp_path)
    out = tmp_path / "aer.json"
    ckpt = str(trained_run / "checkpoints" / "best.pt")
    args = ["--src", str(src), "--tgt", str(tgt), "--gold", str(gold), "--gold-order", "src-tgt"]
    rc = main([ckpt, *args, "--threshold", "0.2", "--json", str(out), "--reverse-ckpt", ckpt])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["sentences"] == len(lines) and report["scored_sentences"] == len(lines)
    assert set(report["results"]) == {
        "argmax",
        "threshold>=0.2",
        "reverse argmax",
        "intersect",
        "grow-diag-final",
    }
    for r in report["results"].values():
        assert 0.0 <= r["aer"] <= 1.0
    # argmax gives exactly one link per target word
    assert report["results"]["argmax"]["links"] == sum(len(s.split()) for s in lines)
    assert report["results"]["argmax"]["sure"] == sum(len(s.split()) for s in lines)
    text = capsys.readouterr().out
    assert "argmax" in text and "AER" in text
    # the anti-diagonal gold is its own transpose, so flipping the order changes nothing
    out2 = tmp_path / "aer2.json"
    assert main([ckpt, *args[:-1], "tgt-src", "--json", str(out2)]) == 0
    r2 = json.loads(out2.read_text())["results"]["argmax"]
    assert r2 == report["results"]["argmax"]
    # a Transformer checkpoint with one head of the first layer; a bad head is a clean error
    tf = str(tiny_transformer_checkpoint(trained_run))
    assert main([tf, *args, "--layer", "0", "--head", "1"]) == 0
    assert main([tf, *args, "--head", "7"]) == 2
    assert "--head 7 is out of range" in capsys.readouterr().err


def tiny_transformer_checkpoint(run: Path, path: Path | None = None) -> Path:
    """An untrained 2-layer, 2-head Transformer with the trained run's config and tokenizer
    (no training), written once next to the run."""
    import torch

    from nmt.checkpoint import load_checkpoint, save_checkpoint
    from nmt.config import to_dataclass
    from nmt.data.tokenizer import Tokenizer
    from nmt.models import build_model

    path = path or run.parent / "tiny_transformer.pt"
    if path.is_file():
        return path
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    sizes = {"d_model": 16, "heads": 2, "ff_size": 32, "enc_layers": 2, "dec_layers": 2}
    config = {**ckpt["config"], "model": {"arch": "transformer", "dropout": 0.0, **sizes}}
    cfg = to_dataclass(config)
    tok = Tokenizer.from_dict(ckpt["tokenizer"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.attention, tok.src_vocab_size, tok.tgt_vocab_size)
    save_checkpoint(
        path, {"config": config, "tokenizer": ckpt["tokenizer"], "model": model.state_dict()}
    )
    return path


def test_forced_attention_shapes_batching_and_heads(trained_run, tmp_path):
    from nmt.translate import Translator

    src = ["a1 a2 a3", "a4 a5 a6 a7 a0 a1", "a2"]
    tgt = ["a3 a2 a1", "a1 a0 a7 a6 a5 a4", "a2"]
    rnn = Translator(trained_run)
    batched = forced_attention(rnn, src, tgt, batch_size=3)
    single = forced_attention(rnn, src, tgt, batch_size=1)
    for s, t, a, b in zip(src, tgt, batched, single):
        assert a.shape == (len(t.split()) + 1, len(s.split()) + 1)  # word-level pieces + EOS
        np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(a, b, atol=1e-5)  # padding does not change the weights
    tf = Translator(tiny_transformer_checkpoint(trained_run))
    mean = forced_attention(tf, src, tgt)
    heads = [forced_attention(tf, src, tgt, head=h) for h in (0, 1)]
    first_layer = forced_attention(tf, src, tgt, layer=0)
    for k, (s, t) in enumerate(zip(src, tgt)):
        assert mean[k].shape == (len(t.split()) + 1, len(s.split()) + 1)
        np.testing.assert_allclose(mean[k], (heads[0][k] + heads[1][k]) / 2, atol=1e-6)
    assert not np.allclose(first_layer[1], mean[1])
    with pytest.raises(AlignError, match="--head 2"):
        forced_attention(tf, src, tgt, head=2)
    with pytest.raises(AlignError, match="--layer 2"):
        forced_attention(tf, src, tgt, layer=2)


# --- real data ---------------------------------------------------------------------------------
def test_rwth_gold_parses():
    root = os.environ.get("NMT_DATA_ROOT")
    folder = Path(root) / "rwth-align-de-en" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip(
            "NMT_DATA_ROOT is not set or has no rwth-align-de-en/ (the RWTH gold alignments)"
        )
    gold = read_talp(folder / "alignment.talp")
    de = (folder / "test.de").read_text(encoding="utf-8").splitlines()
    en = (folder / "test.en").read_text(encoding="utf-8").splitlines()
    assert len(gold) == len(de) == len(en) == 508
    assert sum(len(s) for s in gold.sure) == 9613
    assert sum(len(p - s) for s, p in zip(gold.sure, gold.possible)) == 921
    check_bounds(gold, [len(x.split()) for x in de], [len(x.split()) for x in en])
    flipped = gold.flipped()
    check_bounds(flipped, [len(x.split()) for x in en], [len(x.split()) for x in de])
