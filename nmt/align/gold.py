"""Gold word alignments in the talp format (RWTH German-English set) and their direction.

A talp line lists `i-j` (sure) and `ipj` (possible) links, 1-based; the first index is a word of
the first language of `--gold-order`. In memory links are 0-based and P includes S.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.align.common import AlignError, Link

_TALP = re.compile(r"(\d+)([-p])(\d+)")


def flip(links: Iterable[Link]) -> set[Link]:
    """Swap the two indices of every link."""
    return {(j, i) for i, j in links}


@dataclass
class GoldAlignment:
    """Sure and possible links per sentence, 0-based, as (first index, second index) of the file.

    `possible` always includes `sure` (P ⊇ S)."""

    sure: list[set[Link]]
    possible: list[set[Link]]

    def __len__(self) -> int:
        return len(self.sure)

    def flipped(self) -> GoldAlignment:
        """The same links with the two indices swapped."""
        return GoldAlignment([flip(s) for s in self.sure], [flip(p) for p in self.possible])

    def head(self, n: int | None) -> GoldAlignment:
        """The first `n` sentences (all of them when `n` is None)."""
        return self.select(0, n)

    def select(self, start: int, end: int | None) -> GoldAlignment:
        """Sentences `start` to `end` (0-based, end excluded; None: to the last)."""
        return GoldAlignment(self.sure[start:end], self.possible[start:end])


def parse_talp_line(line: str, number: int = 0) -> tuple[set[Link], set[Link]]:
    """Parse one talp line (`i-j` sure, `ipj` possible, 1-based) into 0-based (sure, possible)."""
    sure: set[Link] = set()
    possible: set[Link] = set()
    for token in line.split():
        m = _TALP.fullmatch(token)
        if m is None or int(m[1]) < 1 or int(m[3]) < 1:
            where = f"line {number}: " if number else ""
            raise AlignError(f"{where}bad link {token!r} (expected i-j or ipj, 1-based)")
        link = (int(m[1]) - 1, int(m[3]) - 1)
        (sure if m[2] == "-" else possible).add(link)
    return sure, possible | sure


def read_talp(path: str | Path) -> GoldAlignment:
    """Read a talp gold alignment file, one line per sentence pair."""
    sure, possible = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            s, p = parse_talp_line(line, number)
            sure.append(s)
            possible.append(p)
    return GoldAlignment(sure, possible)


def format_talp(sure: Iterable[Link], possible: Iterable[Link] = ()) -> str:
    """One talp line (1-based) from 0-based links; possible links that are also sure are sure."""
    sure = set(sure)
    tokens = [f"{i + 1}-{j + 1}" for i, j in sorted(sure)]
    tokens += [f"{i + 1}p{j + 1}" for i, j in sorted(set(possible) - sure)]
    return " ".join(tokens)


def check_bounds(
    gold: GoldAlignment, first_lens: Sequence[int], second_lens: Sequence[int]
) -> None:
    """Raise AlignError naming the line if a gold link points past a sentence's last word."""
    for k, (p, n1, n2) in enumerate(zip(gold.possible, first_lens, second_lens), start=1):
        for i, j in p:
            if i >= n1 or j >= n2:
                raise AlignError(
                    f"gold line {k}: link {i + 1}-{j + 1} is outside the sentence pair "
                    f"({n1} x {n2} words); check --gold-order and the --src/--tgt files"
                )


def gold_is_flipped(gold_order: str, src_lang: str | None, tgt_lang: str | None) -> bool:
    """Whether gold links (first, second) must be swapped to become (model source, model target).

    `gold_order` is `src-tgt`, `tgt-src`, or `L1-L2` with language codes (e.g. `de-en`) that are
    matched against the model's source and target language."""
    if gold_order == "src-tgt":
        return False
    if gold_order == "tgt-src":
        return True
    first, sep, second = gold_order.partition("-")
    if not sep or not first or not second:
        raise AlignError(
            f"--gold-order {gold_order!r}: expected L1-L2 (e.g. de-en), src-tgt or tgt-src"
        )
    if (first, second) == (src_lang, tgt_lang):
        return False
    if (first, second) == (tgt_lang, src_lang):
        return True
    raise AlignError(
        f"--gold-order {gold_order} does not match the direction {src_lang}->{tgt_lang}; "
        "pass --gold-order src-tgt or tgt-src"
    )
