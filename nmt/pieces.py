"""SentencePiece pieces to whitespace words: which word every piece belongs to.

A piece starting with `▁` begins a new word, every other piece continues the current one;
`</s>` is a word of its own. `nmt.align.words` builds word-level attention on this, guided
alignment (`nmt.data.guided`) maps word links to piece links with it. Only the standard
library: plotting uses it without loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence

WORD_START = "\u2581"  # SentencePiece's word-boundary marker "▁"
SPECIAL_WORDS = ("</s>",)  # pieces that are always a word of their own


def piece_word_ids(pieces: Sequence[str]) -> list[int]:
    """The word index of every SentencePiece piece: a piece starting with `▁` begins a new word,
    any other piece continues the current one (the first piece always begins word 0); `</s>` is
    a word of its own."""
    ids: list[int] = []
    word = -1
    prev_special = False
    for k, piece in enumerate(pieces):
        special = piece in SPECIAL_WORDS
        if k == 0 or special or prev_special or piece.startswith(WORD_START):
            word += 1
        ids.append(word)
        prev_special = special
    return ids


def merge_pieces(pieces: Sequence[str]) -> list[str]:
    """The words that `piece_word_ids` groups the pieces into (`▁` removed)."""
    ids = piece_word_ids(pieces)
    words = [""] * (ids[-1] + 1 if ids else 0)
    for w, piece in zip(ids, pieces):
        words[w] += piece
    return [w.replace(WORD_START, "") or WORD_START for w in words]
