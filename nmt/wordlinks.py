"""Word alignments as sets of links: combining two directions, and the statistical aligner.

Both `nmt-align` (the eflomal baseline, bidirectional attention) and guided alignment training
(`nmt.data.guided`: eflomal links of the training corpus) use this module, so it sits below
both. Links are (source word, target word), 0-based.

eflomal: Östling & Tiedemann (2016), "Efficient Word Alignment with Markov Chain Monte Carlo"
(IBM1 + HMM + fertility, sampled), `pip install eflomal`. It has no seed option (2.0 seeds from
/dev/urandom), so repeated runs differ slightly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from nmt.config import SYMMETRISATIONS
from nmt.errors import UserError

Link = tuple[int, int]  # (source word, target word), 0-based
Pair = tuple[str, str]  # (source words, target words), whitespace-separated

_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


class AlignError(UserError, ValueError):
    """Bad input for word alignment (the message is one line)."""


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


def parse_links(line: str) -> set[Link]:
    """eflomal's `i-j` links (0-based) of one line."""
    return {(int(a), int(b)) for a, _, b in (x.partition("-") for x in line.split())}


def run_eflomal(
    pairs: Sequence[Pair], n_samplers: int = 2, model: int = 3
) -> tuple[list[str], list[str]]:
    """eflomal's forward and reverse link lines (`i-j`, 0-based), one per pair of
    whitespace-separated words; every pair must have words on both sides. `model` 3 is
    IBM1 + HMM + fertility; `n_samplers` independent samplers are averaged."""
    try:
        import eflomal
    except ImportError as err:
        raise AlignError(
            "eflomal is not installed: `pip install eflomal` (extra: nmt[align])"
        ) from err
    with tempfile.TemporaryDirectory(prefix="nmt-eflomal-") as tmp:
        fwd_path, rev_path = Path(tmp) / "fwd", Path(tmp) / "rev"
        aligner = eflomal.Aligner(model=model, n_samplers=n_samplers)
        aligner.align(
            [a + "\n" for a, _ in pairs],
            [b + "\n" for _, b in pairs],
            links_filename_fwd=str(fwd_path),
            links_filename_rev=str(rev_path),
            quiet=True,
        )
        fwd = fwd_path.read_text(encoding="utf-8").splitlines()
        rev = rev_path.read_text(encoding="utf-8").splitlines()
    if len(fwd) != len(pairs) or len(rev) != len(pairs):
        raise AlignError(f"eflomal returned {len(fwd)}/{len(rev)} lines for {len(pairs)} pairs")
    return fwd, rev
