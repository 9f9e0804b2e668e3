"""Tests for nmt.align.gold: talp parsing and writing, direction handling, bounds, RWTH set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nmt.align import (
    AlignError,
    GoldAlignment,
    check_bounds,
    flip,
    format_talp,
    gold_is_flipped,
    parse_talp_line,
    read_talp,
    score_alignments,
)


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


def test_gold_head_keeps_the_first_sentences():
    gold = GoldAlignment([{(0, 0)}, {(1, 1)}, set()], [{(0, 0)}, {(1, 1), (0, 1)}, {(2, 2)}])
    two = gold.head(2)
    assert two.sure == [{(0, 0)}, {(1, 1)}] and two.possible == gold.possible[:2]
    assert len(gold.head(None)) == 3
