"""Text normalisation applied before SentencePiece: lowercasing and a Moses-like tokenizer that
makes raw text look like the RWTH gold-alignment text (punctuation split off, `it's` -> `it 's`)."""

from __future__ import annotations

import re

# numbers with separators | clitics ('s, 't) | words (hyphenated ones whole) | any other mark
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|(?<=\w)'\w+|\w+(?:-\w+)*|\S")


def tokenize(line: str) -> str:
    """Split off punctuation and clitics, single spaces between tokens."""
    return " ".join(_TOKEN.findall(line))


def normalize(line: str, lowercase: bool = False, tokenize_text: bool = False) -> str:
    """The text the model sees: `data.lowercase` and `data.tokenize` applied."""
    if lowercase:
        line = line.lower()
    return tokenize(line) if tokenize_text else line
