"""The eflomal baseline: a statistical word aligner scored with the same code as attention.

eflomal (Östling & Tiedemann 2016, IBM1+HMM+fertility, `pip install eflomal`) is trained on
the training pairs **plus the test pairs themselves** (unsupervised, as statistical aligners
are conventionally run on the test set), in both directions; the two directions are combined
with `symmetrise` (default grow-diag-final, Koehn et al. 2003).

Text: training lines are lowercased and, with `tokenize_train="simple"`, punctuation is split
off like the RWTH gold text (`simple_tokenize`). Test lines are only lowercased: the gold
alignment counts their whitespace words, so those words must stay as they are.

eflomal 2.0 has no seed: its sampler seeds itself from /dev/urandom, so repeated runs differ
slightly.
"""

from __future__ import annotations

from collections.abc import Sequence

from nmt.align.common import AlignError, Link
from nmt.data.text import normalize
from nmt.wordlinks import parse_links, run_eflomal, symmetrise

Pair = tuple[str, str]


def simple_tokenize(line: str) -> str:
    """Lowercase and split off punctuation roughly like the RWTH gold text (Moses style): every
    mark is its own token except `.`/`,` inside numbers, clitics become tokens (`it's` -> `it 's`,
    `isn't` -> `isn 't`), hyphenated words stay whole."""
    return normalize(line, lowercase=True, tokenize_text=True)


def _lower_words(line: str) -> str:
    """Lowercased, whitespace words kept as they are (single spaces)."""
    return " ".join(line.lower().split())


def _training_pairs(
    train_src: Sequence[str], train_tgt: Sequence[str], tokenize_train: str
) -> list[Pair]:
    """The prepared training pairs; pairs with an empty side are left out."""
    if tokenize_train not in ("simple", "none"):
        raise AlignError(f"tokenize_train={tokenize_train!r} is not one of simple, none")
    prep = simple_tokenize if tokenize_train == "simple" else _lower_words
    pairs = [(prep(a), prep(b)) for a, b in zip(train_src, train_tgt)]
    return [(a, b) for a, b in pairs if a and b]


def eflomal_align(
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    train_src: Sequence[str] = (),
    train_tgt: Sequence[str] = (),
    method: str = "grow-diag-final",
    tokenize_train: str = "simple",
    n_samplers: int = 2,
    model: int = 3,
) -> list[set[Link]]:
    """eflomal links for the test pairs, (source word, target word) 0-based.

    eflomal is trained on the training pairs (lowercased; tokenized with `simple_tokenize` when
    `tokenize_train="simple"`) plus the test pairs (lowercased, split on whitespace), forward and
    reverse, and the two directions are combined with `symmetrise(method)`. Pairs with an empty
    side are left out of training and get no links."""
    if len(src_lines) != len(tgt_lines) or len(train_src) != len(train_tgt):
        raise AlignError("source and target texts must have the same number of lines")
    pairs = _training_pairs(train_src, train_tgt, tokenize_train)
    test = [(_lower_words(a), _lower_words(b)) for a, b in zip(src_lines, tgt_lines)]
    test_keep = [k for k, (a, b) in enumerate(test) if a and b]
    first = len(pairs)  # the test pairs come after the training pairs
    fwd, rev = run_eflomal(pairs + [test[k] for k in test_keep], n_samplers, model)
    out: list[set[Link]] = [set() for _ in test]
    for n, k in enumerate(test_keep):
        out[k] = symmetrise(parse_links(fwd[first + n]), parse_links(rev[first + n]), method)
    return out
