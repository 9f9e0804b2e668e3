"""Tests for nmt.align.words: SentencePiece pieces to words, attention per word."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nmt.align import (
    AlignError,
    aggregate_to_words,
    extract_argmax,
    merge_pieces,
    piece_weights,
    piece_word_ids,
    word_attention,
    word_ids_in,
)


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


def test_shifted_piece_weights_turn_a_lagging_attention_into_the_diagonal():
    """A decoder whose attention at step t looks at the source word of its input y_{t-1} (the
    lag Chen et al. 2020 observe): the plain read-out is off by one, shift 1 is the diagonal."""
    lagging = np.zeros((5, 5))  # rows predict y1 y2 y3 y4 EOS; columns x1 x2 x3 x4 </s>
    for row, col in enumerate([3, 0, 1, 2, 3]):  # row r (input y_r) looks at x_r; BOS at x4
        lagging[row, col] = 1.0
    plain = piece_weights(lagging, 4)
    shifted = piece_weights(lagging, 4, shift=1)
    assert extract_argmax(shifted) == {(k, k) for k in range(4)}
    assert extract_argmax(plain) == {(3, 0), (0, 1), (1, 2), (2, 3)}
    with pytest.raises(AlignError, match="shift 2 needs 6 attention rows, got 5"):
        piece_weights(lagging, 4, shift=2)


def test_aggregation_with_truncated_source_gives_zero_columns():
    # the model only saw the first two source pieces (+ </s>)
    att = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    w = word_attention(att[:, :], ["▁a", "▁b", "▁c"], ["▁x"])
    np.testing.assert_allclose(w, [[0.6, 0.3, 0.0]])


def test_word_ids_follow_the_gold_words_when_tokenize_split_them():
    # data.tokenize shows the model "bzw ." and "yesterday ' s"; the gold counts "bzw." and "'s"
    assert word_ids_in(["▁bzw", "▁."], ["bzw."]) == [0, 0]
    assert word_ids_in(["▁yesterday", "▁'", "▁s"], ["yesterday", "'s"]) == [0, 1, 1]
    assert word_ids_in(["▁blut", "▁-", "▁und"], ["blut-", "und"]) == [0, 0, 1]
    assert word_ids_in(["▁", ",", "▁ein"], [",", "Ein"]) == [0, 0, 1]  # case aside
    assert word_ids_in([], []) == []


def test_word_ids_fall_back_to_word_start_markers():
    # NFKC turned "…" into "...": the pieces do not spell the words, the ▁ markers decide
    assert word_ids_in(["▁a", "▁..."], ["a", "…"]) == [0, 1]
    assert word_ids_in(["▁x"], ["a", "b"]) is None  # one word for two
    assert word_ids_in(["▁ab"], ["a", "b"]) is None  # a piece across two words


def test_gold_word_grouping_aggregates_like_the_markers():
    ids = word_ids_in(SRC_PIECES, ["das", "häuschen"])
    assert ids == piece_word_ids(SRC_PIECES)
    w = aggregate_to_words(ATT[:4, :3], ids, word_ids_in(TGT_PIECES, ["the", "little", "house"]))
    np.testing.assert_allclose(w, WORDS, atol=1e-12)


def test_words_module_does_not_load_torch():
    # nmt.plotting merges pieces with nmt.align.words: it must not pull in the model code
    code = (
        "import sys; from nmt.align import merge_pieces; import nmt.align.words; "
        "print('torch' in sys.modules, 'nmt.translate' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
