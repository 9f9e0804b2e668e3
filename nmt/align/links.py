"""Word links from word-level attention and AER scoring (symmetrisation: `nmt.wordlinks`).

Extraction works on a (target words, source words) weight matrix and gives links as
(source word, target word). Scoring follows Och & Ney (2003) over the whole corpus, against
sure links S and possible links P (P includes S).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmt.align.common import AlignError, Link
from nmt.wordlinks import SYMMETRISATIONS, symmetrise

__all__ = [
    "AGREEMENT",
    "COMBINES",
    "SHIFT_ATT",
    "SYMMETRISATIONS",
    "agreement_weights",
    "extract",
    "extract_argmax",
    "extract_threshold",
    "extraction_names",
    "method_name",
    "method_readout",
    "method_threshold",
    "method_way",
    "score_alignments",
    "symmetrise",
]

# Method names: the one spelling nmt-align, nmt.align.sweep, the report and the explorer share.
#   [reverse ][shift-att ]EXTRACTION              one direction; EXTRACTION: argmax | threshold>=T
#   [shift-att ]SYMMETRISATION[ of threshold>=T]  both directions symmetrised (of argmax: unnamed)
#   [shift-att ]agreement[ of threshold>=T]       both directions' weights combined, then extracted
SHIFT_ATT = "shift-att"  # the read-out of Chen et al. (2020); "" names the plain one
AGREEMENT = "agreement"  # the two directions' weights combined before extraction
THRESHOLD = "threshold>="  # a threshold extraction's name: THRESHOLD + its value
COMBINES = ("intersection", "grow-diag", "grow-diag-final")  # the symmetrisations nmt-align scores


def extraction_names(thresholds: Sequence[float]) -> dict[str, float | None]:
    """The extractions of one read-out: name -> threshold (None for argmax)."""
    return {"argmax": None, **{f"{THRESHOLD}{value:g}": value for value in thresholds}}


def method_name(extraction: str = "argmax", readout: str = "", combine: str = "") -> str:
    """A method's name from its read-out ("" or SHIFT_ATT), its extraction and how the two
    directions combine: "" (this direction), "reverse" or one of SYMMETRISATIONS."""
    if combine and combine != "reverse":
        parts = [readout, combine, "" if extraction == "argmax" else f"of {extraction}"]
    else:
        parts = [combine, readout, extraction]
    return " ".join(part for part in parts if part)


def method_readout(name: str) -> str:
    """The read-out a method name uses: SHIFT_ATT or "" (the plain one)."""
    return SHIFT_ATT if SHIFT_ATT in name.split() else ""


def method_threshold(name: str) -> str | None:
    """The threshold a method extracts at, as its name spells it ("0.3"); None for argmax."""
    return next((w[len(THRESHOLD) :] for w in name.split() if w.startswith(THRESHOLD)), None)


def method_way(name: str) -> str:
    """A method's name without its extraction: its read-out and how the two directions combine
    ("", "reverse", "grow-diag", "shift-att agreement", ...), the methods that differ only in
    argmax or threshold sharing one way."""
    return " ".join(
        w for w in name.split() if w in {SHIFT_ATT, "reverse", AGREEMENT, *SYMMETRISATIONS}
    )


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


def extract(weights: np.ndarray, threshold: float | None) -> set[Link]:
    """`extract_argmax` (threshold None) or `extract_threshold`."""
    return extract_argmax(weights) if threshold is None else extract_threshold(weights, threshold)


def agreement_weights(fwd: np.ndarray, rev: np.ndarray) -> np.ndarray:
    """Both directions' word-level weights for the same (target word, source word) pairs,
    combined before extraction: their geometric mean. Liang et al. (2006, "Alignment by
    Agreement") decode two directional aligners by thresholding the product of their
    posteriors; its square root keeps one direction's scale, so the same thresholds apply. A
    link needs weight from both models, as in the intersection, but a pair that both give
    moderate weight can beat one that only one model is sure of."""
    fwd, rev = np.asarray(fwd), np.asarray(rev)  # (T words, S words) each
    if fwd.shape != rev.shape:
        raise AlignError(f"the two directions' weights differ in shape: {fwd.shape}, {rev.shape}")
    return np.sqrt(fwd * rev)  # (T, S)


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
