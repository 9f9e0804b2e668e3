"""Statistical word links of the training corpus, at subword level, for guided alignment.

Guided alignment training (Garg et al. 2019, "Jointly Learning to Align and Translate with
Transformer Models", sec. 4; for RNN attention Liu et al. 2016, Chen et al. 2016) pulls the
attention toward the links of a statistical aligner. Here that aligner is eflomal (Östling &
Tiedemann 2016), run once on the encoded training split, both directions, combined with
`symmetrise` (default grow-diag-final, Koehn et al. 2003):

1. Every training pair's pieces are grouped into words by their `▁` markers
   (`nmt.pieces.merge_pieces`), so eflomal sees exactly the words the model's pieces spell
   (the prepared text: `data.lowercase`, `data.tokenize`), and each word's pieces are known.
2. eflomal aligns those words; a word link (s, t) becomes a link between every piece of word s
   and every piece of word t (Garg et al. 2019, sec. 5.1: subwords inherit their word's links).
3. The piece links are stored beside the encoded split as a TokenArray of flat
   (source piece, target piece) pairs, one row per training pair, under a name that holds a
   digest of the split's ids and the symmetrisation: a changed corpus, tokenizer or filter
   gives new ids and a new file; the same ones reuse it (resume, data-parallel ranks).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from nmt.data.arrays import TokenArray, TokenArrayWriter
from nmt.data.tokenizer import Tokenizer
from nmt.pieces import merge_pieces, piece_word_ids
from nmt.wordlinks import parse_links, run_eflomal, symmetrise

LINKS_VERSION = 1  # bump when the way links are made changes: old caches are then ignored


def links_key(src: TokenArray, tgt: TokenArray, method: str) -> str:
    """A digest of the training ids (both sides, with their boundaries) and the method."""
    h = hashlib.sha1(f"v{LINKS_VERSION}:{method}".encode())
    for arr in (src, tgt):
        h.update(np.ascontiguousarray(arr.offsets).tobytes())
        h.update(np.ascontiguousarray(arr.data).tobytes())
    return h.hexdigest()[:16]


def _words(pieces: list[str]) -> tuple[str, list[int]]:
    """The words a sentence's pieces spell (space-separated) and the word of every piece."""
    return " ".join(merge_pieces(pieces)), piece_word_ids(pieces)


def piece_links(
    word_links: set[tuple[int, int]], src_word_of: list[int], tgt_word_of: list[int]
) -> np.ndarray:
    """Word links (source word, target word) -> piece links, flat int32
    [s0, t0, s1, t1, ...]: every piece of a linked source word with every piece of the target
    word, sorted."""
    src_pieces: dict[int, list[int]] = {}
    tgt_pieces: dict[int, list[int]] = {}
    for k, w in enumerate(src_word_of):
        src_pieces.setdefault(w, []).append(k)
    for k, w in enumerate(tgt_word_of):
        tgt_pieces.setdefault(w, []).append(k)
    pairs = sorted(
        (i, j) for s, t in word_links for i in src_pieces.get(s, ()) for j in tgt_pieces.get(t, ())
    )
    return np.asarray(pairs, dtype=np.int32).reshape(-1)


def training_links(
    src: TokenArray,
    tgt: TokenArray,
    tokenizer: Tokenizer,
    folder: Path,
    method: str,
    log: logging.Logger,
) -> TokenArray:
    """Subword links of every training pair (flat (source piece, target piece) pairs), from
    eflomal on the words the pieces spell; cached in `folder` under a digest of the ids."""
    prefix = Path(folder) / f"links-{method}-{links_key(src, tgt, method)}"
    if all(p.is_file() for p in TokenArray.paths(prefix)):
        links = TokenArray.load(prefix)
        log.info("eflomal links: reusing %s", prefix)
    else:
        links = _align_and_store(src, tgt, tokenizer, prefix, method, log)
    with_links = int((links.lengths > 0).sum())
    log.info(
        "eflomal links: %d of %d training pairs have links (%d piece links, %s)",
        with_links,
        len(links),
        int(links.lengths.sum()) // 2,
        method,
    )
    return links


def _align_and_store(
    src: TokenArray,
    tgt: TokenArray,
    tokenizer: Tokenizer,
    prefix: Path,
    method: str,
    log: logging.Logger,
) -> TokenArray:
    log.info("eflomal links: running eflomal on %d training pairs (%s)", len(src), method)
    src_words, tgt_words, src_word_of, tgt_word_of = [], [], [], []
    for i in range(len(src)):
        s_text, s_of = _words(tokenizer.src_pieces_from_ids(src[i]))
        t_text, t_of = _words(tokenizer.tgt_pieces_from_ids(tgt[i]))
        src_words.append(s_text)
        tgt_words.append(t_text)
        src_word_of.append(s_of)
        tgt_word_of.append(t_of)
    keep = [i for i in range(len(src)) if src_words[i] and tgt_words[i]]
    fwd, rev = run_eflomal([(src_words[i], tgt_words[i]) for i in keep])
    rows = [np.zeros(0, np.int32) for _ in range(len(src))]
    for n, i in enumerate(keep):
        words = symmetrise(parse_links(fwd[n]), parse_links(rev[n]), method)
        rows[i] = piece_links(words, src_word_of[i], tgt_word_of[i])
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmp = prefix.with_name(prefix.name + ".tmp")
    writer = TokenArrayWriter(tmp)
    writer.append(TokenArray.from_lists(rows))
    writer.close()
    for tmp_path, path in zip(TokenArray.paths(tmp), TokenArray.paths(prefix)):
        tmp_path.replace(path)  # offsets last: a reader finds both files or re-aligns
    return TokenArray.load(prefix)
