"""Tests for nmt.align.links: AER scoring, argmax/threshold extraction, symmetrisation."""

from __future__ import annotations

import numpy as np
import pytest

from nmt.align import (
    SHIFT_ATT,
    AlignError,
    GoldAlignment,
    agreement_weights,
    extract,
    extract_argmax,
    extract_threshold,
    extraction_names,
    method_name,
    method_readout,
    method_threshold,
    method_way,
    score_alignments,
    symmetrise,
)

# word-level attention (target words, source words), as aggregated in test_align_words.py
WORDS = np.array(
    [
        [0.7, 0.2],  # the
        [0.1, 0.8],  # little
        [0.05, 0.8],  # house
    ]
)


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
    # grow-diag adds neighbours of the intersection only; final adds the rest of each direction
    far_fwd, far_rev = {(0, 0), (1, 1), (3, 4)}, {(0, 0), (1, 1), (2, 1)}
    assert symmetrise(far_fwd, far_rev, "grow-diag") == {(0, 0), (1, 1), (2, 1)}
    assert symmetrise(far_fwd, far_rev, "grow-diag-final") == {(0, 0), (1, 1), (2, 1), (3, 4)}
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


def test_method_names_spell_each_combination_once_and_give_back_their_read_out():
    """One spelling for every method nmt-align scores: the read-out, the extraction, and how the
    two directions combine; the read-out is recovered from the name (the explorer's gold view
    and the report read it back)."""
    extractions = extraction_names([0.2, 0.35])
    assert extractions == {"argmax": None, "threshold>=0.2": 0.2, "threshold>=0.35": 0.35}
    combines = ("", "reverse", "intersection", "grow-diag", "grow-diag-final")
    names = {
        (readout, extraction, combine): method_name(extraction, readout, combine)
        for readout in ("", SHIFT_ATT)
        for extraction in extractions
        for combine in combines
    }
    assert len(set(names.values())) == len(names)  # no two methods share a name
    assert names["", "argmax", ""] == "argmax"
    assert names[SHIFT_ATT, "threshold>=0.2", "reverse"] == "reverse shift-att threshold>=0.2"
    assert names["", "argmax", "grow-diag"] == "grow-diag"
    assert names[SHIFT_ATT, "threshold>=0.35", "intersection"] == (
        "shift-att intersection of threshold>=0.35"
    )
    for (readout, _, _), name in names.items():
        assert method_readout(name) == readout
    # a method's way of reading: its read-out and how the directions combine, not the extraction
    names.update(
        {
            (r, e, "agreement"): method_name(e, r, "agreement")
            for r in ("", SHIFT_ATT)
            for e in extractions
        }
    )
    ways = {method_way(name) for name in names.values()}
    assert len(ways) == 2 * 6  # 2 read-outs x (2 directions, 3 symmetrisations, agreement)
    for (readout, _, combine), name in names.items():
        parts = (combine, readout) if combine == "reverse" else (readout, combine)
        assert method_way(name) == " ".join(part for part in parts if part)
    assert method_way("reverse shift-att threshold>=0.2") == "reverse shift-att"
    assert method_way("grow-diag-final of threshold>=0.1") == "grow-diag-final"
    assert method_threshold("grow-diag-final of threshold>=0.1") == "0.1"
    assert method_threshold("reverse shift-att threshold>=0.35") == "0.35"
    assert method_threshold("shift-att agreement") is None


def test_agreement_combines_both_directions_weights():
    """agreement: the geometric mean of the two directions' weights, then any extraction; a pair
    that both directions give moderate weight beats one only one direction is sure of."""
    fwd = np.array([[0.9, 0.1], [0.5, 0.5]])  # (target words, source words)
    rev = np.array([[0.1, 0.9], [0.0, 1.0]])  # the reverse model's, already transposed
    both = agreement_weights(fwd, rev)
    np.testing.assert_allclose(both, [[0.3, 0.3], [0.0, np.sqrt(0.5)]])
    assert extract(both, 0.5) == {(1, 1)} and extract(both, None) == extract_argmax(both)
    assert extract(fwd, 0.5) == extract_threshold(fwd, 0.5)
    with pytest.raises(AlignError, match="differ in shape"):
        agreement_weights(fwd, rev[:1])
