"""SentencePiece pieces to whitespace words: the word of every piece, and attention per word.

Gold alignments (and readers of heatmaps) count whitespace words, the model attends over
subword pieces. A piece starting with `▁` begins a new word, every other piece continues the
current one; `</s>` is a word of its own. A word's weight is the **sum over its source pieces**
(the attention a target piece pays to the word) and the **mean over its target pieces** (so
every target word keeps one distribution over the source words).

Only numpy: `nmt.plotting` merges pieces with the same code without loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmt.align.common import AlignError
from nmt.pieces import SPECIAL_WORDS, WORD_START, merge_pieces, piece_word_ids

__all__ = [
    "SPECIAL_WORDS",
    "WORD_START",
    "aggregate_to_words",
    "merge_pieces",
    "piece_weights",
    "piece_word_ids",
    "word_attention",
    "word_ids_in",
]


def _word_count(word_ids: Sequence[int], given: int | None) -> int:
    """`given`, or one more than the largest word index (0 for no pieces)."""
    if given is not None:
        return given
    return max(word_ids) + 1 if len(word_ids) else 0


def aggregate_to_words(
    weights: np.ndarray,
    src_word_ids: Sequence[int],
    tgt_word_ids: Sequence[int],
    n_src_words: int | None = None,
    n_tgt_words: int | None = None,
) -> np.ndarray:
    """Piece-level attention (T pieces, S pieces) -> word-level (T words, S words).

    Source pieces of a word are **summed** (the attention a target piece pays to the word);
    target pieces of a word are **averaged** (each target word keeps one distribution).
    `src_word_ids` may be longer than the matrix is wide (truncated source): missing pieces
    count as weight 0."""
    weights = np.asarray(weights, dtype=np.float64)  # (T pieces, S pieces)
    T, S = weights.shape
    if len(tgt_word_ids) != T:
        raise AlignError(f"{T} attention rows but {len(tgt_word_ids)} target pieces")
    n_s = _word_count(src_word_ids, n_src_words)
    n_t = _word_count(tgt_word_ids, n_tgt_words)
    src_map = np.zeros((S, n_s))  # (S pieces, S words): 1 where the piece belongs to the word
    for k, w in enumerate(list(src_word_ids)[:S]):
        src_map[k, w] = 1.0
    tgt_map = np.zeros((n_t, T))  # (T words, T pieces): 1 / pieces of the word
    for k, w in enumerate(tgt_word_ids):
        tgt_map[w, k] = 1.0
    tgt_map /= np.maximum(tgt_map.sum(axis=1, keepdims=True), 1.0)
    return tgt_map @ weights @ src_map  # (T words, S words)


def _spelled_word_ids(pieces: Sequence[str], words: Sequence[str]) -> list[int] | None:
    """The index of the word each piece's characters lie in, or None when the pieces do not
    spell `words` (case aside) or one piece spans two words."""
    text = "".join(words).lower()
    owner = [w for w, word in enumerate(words) for _ in word.lower()]  # word of every character
    ids: list[int] = []
    pos = 0
    for piece in pieces:
        chars = piece.replace(WORD_START, "").lower()
        if text[pos : pos + len(chars)] != chars:
            return None
        span = owner[pos : pos + len(chars)] or owner[pos : pos + 1] or owner[-1:]
        if not span or span[0] != span[-1]:
            return None
        ids.append(span[0])
        pos += len(chars)
    return ids if pos == len(text) else None


def word_ids_in(pieces: Sequence[str], words: Sequence[str]) -> list[int] | None:
    """The index in `words` (whitespace words, e.g. of a gold alignment's text) of every piece.

    Pieces are grouped by the word their characters lie in, so a word the model saw split by
    `data.tokenize` (`bzw.` -> `bzw .`) is still one word. When the pieces do not spell the
    words (SentencePiece's NFKC changed a character) the `▁` markers decide; None when those
    give a different number of words."""
    ids = _spelled_word_ids(pieces, words)
    if ids is None:
        ids = piece_word_ids(pieces)
        if _word_count(ids, None) != len(words):
            return None
    return ids


def piece_weights(
    attention: np.ndarray, n_tgt_pieces: int, renormalize: bool = False, shift: int = 0
):
    """Forced-decoding attention (T + 1 + extra, S' + 1) -> (T, S'): one row per target piece,
    the `</s>` column dropped; with `renormalize` every row rescaled to sum to 1 again.

    Piece k gets row k + `shift`: row k predicts piece k (shift 0); the shifted read-out of
    Chen et al. (2020) reads the row of the step whose query has already read piece k (shift 1
    or 2, `nmt.models.readout_shift`), which needs the rows past the one that predicts EOS."""
    weights = np.asarray(attention, dtype=np.float64)
    if weights.shape[0] < n_tgt_pieces + shift:
        raise AlignError(
            f"shift {shift} needs {n_tgt_pieces + shift} attention rows, got {weights.shape[0]}"
        )
    weights = weights[shift : shift + n_tgt_pieces, :-1]  # (T, S')
    if renormalize:
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return weights


def word_attention(
    attention: np.ndarray,
    src_pieces: Sequence[str],
    tgt_pieces: Sequence[str],
    renormalize: bool = False,
) -> np.ndarray:
    """Forced-decoding attention (T + 1, S' + 1) with EOS row and `</s>` column -> word level
    (target words, source words), words by the `▁` markers; see `aggregate_to_words`. S' may be
    shorter than the source (truncation). With `renormalize`, each row is rescaled to sum to 1
    after dropping `</s>`."""
    weights = piece_weights(attention, len(tgt_pieces), renormalize)  # (T, S')
    return aggregate_to_words(weights, piece_word_ids(src_pieces), piece_word_ids(tgt_pieces))
