"""Word links from word-level attention, symmetrisation of two directions, and AER scoring.

Extraction works on a (target words, source words) weight matrix and gives links as
(source word, target word). Scoring follows Och & Ney (2003) over the whole corpus, against
sure links S and possible links P (P includes S).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmt.align.common import AlignError, Link

SYMMETRISATIONS = ("intersection", "grow-diag", "grow-diag-final", "union")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def extract_argmax(weights: np.ndarray) -> set[Link]:
    """Luong et al. (2015): for each target word (row) the source word (column) with the most
    weight. Rows with no weight at all give no link. Links are (source, target)."""
    weights = np.asarray(weights)  # (T words, S words)
    if weights.size == 0:
        return set()
    best = weights.argmax(axis=1)  # (T,)
    return {(int(s), t) for t, s in enumerate(best) if weights[t].sum() > 0}


def extract_threshold(weights: np.ndarray, threshold: float) -> set[Link]:
    """Every (source, target) word pair with weight >= `threshold`."""
    t_idx, s_idx = np.nonzero(np.asarray(weights) >= threshold)
    return {(int(s), int(t)) for t, s in zip(t_idx, s_idx)}


class _Growing:
    """An alignment being grown, with the source and target words it already covers."""

    def __init__(self, links: set[Link]) -> None:
        self.links = set(links)
        self.src_done = {s for s, _ in links}
        self.tgt_done = {t for _, t in links}

    def covers_new_word(self, link: Link) -> bool:
        return link[0] not in self.src_done or link[1] not in self.tgt_done

    def add(self, link: Link) -> None:
        self.links.add(link)
        self.src_done.add(link[0])
        self.tgt_done.add(link[1])


def _grow_diag(fwd: set[Link], rev: set[Link]) -> _Growing:
    """Koehn et al. (2003): grow the intersection by union links that neighbour an aligned link
    (also diagonally) and cover a so far unaligned word, until none can be added."""
    union = fwd | rev
    out = _Growing(fwd & rev)
    added = True
    while added:  # grow-diag: until no neighbour of an aligned link can be added
        added = False
        for s, t in sorted(out.links):
            for ds, dt in _NEIGHBOURS:
                new = (s + ds, t + dt)
                if new in union and new not in out.links and out.covers_new_word(new):
                    out.add(new)
                    added = True
    return out


def _grow_diag_final(fwd: set[Link], rev: set[Link]) -> set[Link]:
    """grow-diag, then add the remaining links of each direction that cover a so far unaligned
    word (Koehn et al. 2003)."""
    out = _grow_diag(fwd, rev)
    for direction in (fwd, rev):  # final
        for link in sorted(direction):
            if link not in out.links and out.covers_new_word(link):
                out.add(link)
    return out.links


def symmetrise(fwd: set[Link], rev: set[Link], method: str = "grow-diag-final") -> set[Link]:
    """Combine two directional alignments given in the same (source, target) orientation.

    `intersection`, `union`, `grow-diag` or `grow-diag-final` (Koehn et al. 2003): grow-diag
    starts from the intersection and repeatedly adds union links that neighbour (also
    diagonally) an aligned link and cover a so far unaligned source or target word;
    grow-diag-final then adds any remaining link of each direction that covers an unaligned
    word."""
    if method == "intersection":
        return fwd & rev
    if method == "union":
        return fwd | rev
    if method == "grow-diag":
        return _grow_diag(fwd, rev).links
    if method == "grow-diag-final":
        return _grow_diag_final(fwd, rev)
    raise AlignError(f"unknown symmetrisation {method!r} ({', '.join(SYMMETRISATIONS)})")


def score_alignments(
    predicted: Sequence[set[Link]], sure: Sequence[set[Link]], possible: Sequence[set[Link]]
) -> dict[str, float | int]:
    """Corpus-level AER, precision and recall (Och & Ney 2003); P is taken to include S.

    AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|); precision = |A∩P| / |A| (0 when A is empty);
    recall = |A∩S| / |S| (0 when S is empty)."""
    if not len(predicted) == len(sure) == len(possible):
        raise AlignError(f"{len(predicted)} predicted but {len(sure)} gold sentences")
    a = s = a_s = a_p = 0
    for A, S, P in zip(predicted, sure, possible):
        P = P | S
        a += len(A)
        s += len(S)
        a_s += len(A & S)
        a_p += len(A & P)
    return {
        "aer": 1.0 - (a_s + a_p) / (a + s) if a + s else 0.0,
        "precision": a_p / a if a else 0.0,
        "recall": a_s / s if s else 0.0,
        "links": a,
        "sure": s,
    }
