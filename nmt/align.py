"""`nmt-align`: alignment error rate (AER) of attention against gold word alignments.

What it does, step by step:

1. **Forced decoding.** The reference translation is fed to the model with teacher forcing
   (`model.forward(..., return_attention=True)`, batched). Attention row t is the distribution
   used to predict target piece t; the row that predicts EOS and the source `</s>` column are
   dropped before anything else. Transformer: `--layer` (default: last) and `--head` (default:
   the average over the heads of that layer).
2. **Subwords to words.** The gold alignment is over the whitespace words of the (lowercased,
   tokenized) test text. A SentencePiece piece starting with `▁` begins a new word; every other
   piece continues the current word. The word-level weight of (target word t, source word s) is
   the **sum over the source pieces of s** of the weights, **averaged over the target pieces of
   t**. So every target word still has one distribution over source words (summing to at most 1;
   the mass the model put on `</s>` is not renormalised away unless `--renormalize`).
3. **Extraction.**
   - `argmax` (Luong et al. 2015): for every target word, the source word with the most weight.
   - `threshold`: every (source word, target word) with weight >= `--threshold` (default 0.3).
   - with `--reverse-ckpt` (a model trained in the other direction, same text): its own argmax
     alignment, and the `intersect` and `grow-diag-final` symmetrisations of both argmax
     alignments.
4. **Scoring** (Och & Ney 2003) against sure links S and possible links P (P includes S), over
   the whole corpus: precision = |A∩P|/|A|, recall = |A∩S|/|S|,
   AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|). An empty A gives precision 0.

**Direction.** The gold file lists `i-j` (sure) and `ipj` (possible) links, 1-based, with the
index into the first language of `--gold-order` first (default `de-en`: German first, as in the
RWTH set). `--src`/`--tgt` are the model's source and target side (for a de→en model,
`--src test.de --tgt test.en`; for en→de, the other way round). The checkpoint's
`data.src_lang`/`data.tgt_lang` decide whether the gold links are flipped; `--gold-order src-tgt`
or `tgt-src` says it explicitly.

**What it assumes about the text.** The gold set (RWTH) is lowercased and tokenized (punctuation
split off, `'s` split as in Moses). The test lines are fed as they are (lowercased again if the
model was trained with `data.lowercase=true`); a model trained on cased text gets a warning,
since it then sees lowercase input it never saw in training. Train with `data.lowercase=true`
for meaningful numbers.

**eflomal baseline** (`--eflomal`): the statistical aligner eflomal (Östling & Tiedemann 2016,
IBM1+HMM+fertility, `pip install eflomal`) is trained on `--train-src`/`--train-tgt` (plain or
.gz; lowercased and, with `--train-tokenize simple`, punctuation split off to match the gold's
tokenization) **plus the test sentences themselves** (unsupervised, as statistical aligners are
conventionally run on the test set), in both directions, and symmetrised with
`--symmetrise` (default grow-diag-final, Koehn et al. 2003). It is scored with the same code.
eflomal is a sampler without a seed option: repeated runs differ slightly.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nmt.data.text import normalize

WORD_START = "\u2581"  # SentencePiece's word-boundary marker "▁"
SPECIAL_WORDS = ("</s>",)  # pieces that are always a word of their own
Link = tuple[int, int]  # (source word, target word), 0-based
_TALP = re.compile(r"(\d+)([-p])(\d+)")


class AlignError(ValueError):
    """Bad input for alignment scoring (the message is one line)."""


# --- gold alignments -------------------------------------------------------------------------
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


def flip(links: Iterable[Link]) -> set[Link]:
    """Swap the two indices of every link."""
    return {(j, i) for i, j in links}


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


# --- scoring ---------------------------------------------------------------------------------
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


# --- subwords to words -----------------------------------------------------------------------
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
    weights = np.asarray(weights, dtype=np.float64)
    T, S = weights.shape
    n_s = (
        n_src_words
        if n_src_words is not None
        else (max(src_word_ids) + 1 if len(src_word_ids) else 0)
    )
    n_t = (
        n_tgt_words
        if n_tgt_words is not None
        else (max(tgt_word_ids) + 1 if len(tgt_word_ids) else 0)
    )
    if len(tgt_word_ids) != T:
        raise AlignError(f"{T} attention rows but {len(tgt_word_ids)} target pieces")
    src_map = np.zeros((S, n_s))
    for k, w in enumerate(list(src_word_ids)[:S]):
        src_map[k, w] = 1.0
    tgt_map = np.zeros((n_t, T))
    for k, w in enumerate(tgt_word_ids):
        tgt_map[w, k] = 1.0
    counts = tgt_map.sum(axis=1, keepdims=True)
    tgt_map = tgt_map / np.maximum(counts, 1.0)
    return tgt_map @ weights @ src_map


# --- extraction and symmetrisation ------------------------------------------------------------
def extract_argmax(weights: np.ndarray) -> set[Link]:
    """Luong et al. (2015): for each target word (row) the source word (column) with the most
    weight. Rows with no weight at all give no link. Links are (source, target)."""
    weights = np.asarray(weights)
    if weights.size == 0:
        return set()
    best = weights.argmax(axis=1)
    return {(int(s), t) for t, s in enumerate(best) if weights[t].sum() > 0}


def extract_threshold(weights: np.ndarray, threshold: float) -> set[Link]:
    """Every (source, target) word pair with weight >= `threshold`."""
    t_idx, s_idx = np.nonzero(np.asarray(weights) >= threshold)
    return {(int(s), int(t)) for t, s in zip(t_idx, s_idx)}


_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def symmetrise(fwd: set[Link], rev: set[Link], method: str = "grow-diag-final") -> set[Link]:
    """Combine two directional alignments given in the same (source, target) orientation.

    `intersection`, `union`, or `grow-diag-final` (Koehn et al. 2003): start from the
    intersection, repeatedly add union links that neighbour (also diagonally) an aligned link
    and cover a so far unaligned source or target word, then add any remaining link of each
    direction that covers an unaligned word."""
    if method == "intersection":
        return fwd & rev
    if method == "union":
        return fwd | rev
    if method != "grow-diag-final":
        raise AlignError(
            f"unknown symmetrisation {method!r} (intersection, union, grow-diag-final)"
        )
    union = fwd | rev
    out = set(fwd & rev)
    src_done = {s for s, _ in out}
    tgt_done = {t for _, t in out}

    def add(link: Link) -> None:
        out.add(link)
        src_done.add(link[0])
        tgt_done.add(link[1])

    added = True
    while added:
        added = False
        for s, t in sorted(out):
            for ds, dt in _NEIGHBOURS:
                new = (s + ds, t + dt)
                if (
                    new in union
                    and new not in out
                    and (new[0] not in src_done or new[1] not in tgt_done)
                ):
                    add(new)
                    added = True
    for direction in (fwd, rev):
        for link in sorted(direction):
            if link not in out and (link[0] not in src_done or link[1] not in tgt_done):
                add(link)
    return out


# --- attention from a checkpoint --------------------------------------------------------------
def check_layer_head(cfg, layer: int = -1, head: int | None = None) -> None:
    """Raise AlignError if a Transformer `layer`/`head` is out of range for the config (both are
    ignored for RNN models, which have one attention distribution per step)."""
    if getattr(cfg.model, "arch", "rnn") != "transformer":
        return
    n_layers, n_heads = cfg.model.dec_layers, cfg.model.heads
    if not -n_layers <= layer < n_layers:
        raise AlignError(f"--layer {layer} is out of range: the decoder has {n_layers} layers")
    if head is not None and not -n_heads <= head < n_heads:
        raise AlignError(f"--head {head} is out of range: the model has {n_heads} heads")


@torch.no_grad()
def forced_attention(
    translator,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    batch_size: int = 32,
    layer: int = -1,
    head: int | None = None,
) -> list[np.ndarray]:
    """Teacher-forced attention for every sentence pair, as float32 (T + 1, S + 1) arrays.

    `translator` is a `nmt.translate.Translator` (model, tokenizer, config). Rows are the target
    pieces then EOS (row t predicts piece t); columns the source pieces (cut to the model's
    source limit) then `</s>`. Transformer attention is reduced to one layer and one head or the
    head average (`nmt.models.reduce_attention`)."""
    from nmt.data.batching import collate
    from nmt.models import reduce_attention

    if len(src_lines) != len(tgt_lines):
        raise AlignError(f"{len(src_lines)} source but {len(tgt_lines)} target lines")
    check_layer_head(translator.cfg, layer, head)
    if translator.cfg.data.lowercase:
        src_lines = [s.lower() for s in src_lines]
        tgt_lines = [t.lower() for t in tgt_lines]
    tok = translator.tokenizer
    src_ids = [ids[: translator.max_src_len] for ids in tok.encode_src(list(src_lines))]
    tgt_ids = tok.encode_tgt(list(tgt_lines))
    order = sorted(range(len(src_ids)), key=lambda i: (len(src_ids[i]), len(tgt_ids[i])))
    out: list[np.ndarray | None] = [None] * len(src_ids)
    model = translator.model
    model.eval()
    for start in range(0, len(order), max(1, batch_size)):
        idx = order[start : start + batch_size]
        batch = collate([src_ids[i] for i in idx], [tgt_ids[i] for i in idx], idx).to(
            translator.device
        )
        _, att = model(batch.src, batch.src_lens, batch.tgt_in, return_attention=True)
        att = att.float().cpu()
        for k, i in enumerate(idx):
            a = att[k, : len(tgt_ids[i]) + 1][..., : len(src_ids[i]) + 1]
            out[i] = reduce_attention(a, layer, head).numpy()
    return out  # type: ignore[return-value]


def word_attention(
    attention: np.ndarray,
    src_pieces: Sequence[str],
    tgt_pieces: Sequence[str],
    renormalize: bool = False,
) -> np.ndarray:
    """Forced-decoding attention (T + 1, S' + 1) with EOS row and `</s>` column -> word level
    (target words, source words); see `aggregate_to_words`. S' may be shorter than the source
    (truncation). With `renormalize`, each row is rescaled to sum to 1 after dropping `</s>`."""
    weights = np.asarray(attention, dtype=np.float64)[: len(tgt_pieces), :-1]
    if renormalize:
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return aggregate_to_words(weights, piece_word_ids(src_pieces), piece_word_ids(tgt_pieces))


@dataclass
class ModelLinks:
    """Links extracted from one model, in the model's (source word, target word) orientation."""

    argmax: list[set[Link]]
    threshold: list[set[Link]]
    mismatched: list[int]  # 0-based lines whose piece-words do not match the whitespace words


def model_alignments(
    translator,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    threshold: float = 0.3,
    batch_size: int = 32,
    layer: int = -1,
    head: int | None = None,
    renormalize: bool = False,
) -> ModelLinks:
    """Forced decoding, word aggregation and extraction (argmax, threshold) for a model."""
    att = forced_attention(translator, src_lines, tgt_lines, batch_size, layer, head)
    lower = translator.cfg.data.lowercase
    tok = translator.tokenizer
    am, th, bad = [], [], []
    for k, (s, t, a) in enumerate(zip(src_lines, tgt_lines, att)):
        sp = tok.src_pieces(s.lower() if lower else s)
        tp = tok.tgt_pieces(t.lower() if lower else t)
        w = word_attention(a, sp, tp, renormalize)
        if w.shape != (len(t.split()), len(s.split())):
            bad.append(k)
            am.append(set())
            th.append(set())
            continue
        am.append(extract_argmax(w))
        th.append(extract_threshold(w, threshold))
    return ModelLinks(am, th, bad)


# --- eflomal baseline -------------------------------------------------------------------------
def simple_tokenize(line: str) -> str:
    """Lowercase and split off punctuation roughly like the RWTH gold text (Moses style): every
    mark is its own token except `.`/`,` inside numbers, clitics become tokens (`it's` -> `it 's`,
    `isn't` -> `isn 't`), hyphenated words stay whole."""
    return normalize(line, lowercase=True, tokenize_text=True)


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
    try:
        import eflomal
    except ImportError as err:
        raise AlignError(
            "the eflomal baseline needs `pip install eflomal` (extra: nmt[align])"
        ) from err
    if len(src_lines) != len(tgt_lines) or len(train_src) != len(train_tgt):
        raise AlignError("source and target texts must have the same number of lines")
    if tokenize_train not in ("simple", "none"):
        raise AlignError(f"tokenize_train={tokenize_train!r} is not one of simple, none")
    prep = (
        simple_tokenize if tokenize_train == "simple" else (lambda x: " ".join(x.lower().split()))
    )
    pairs = [(prep(a), prep(b)) for a, b in zip(train_src, train_tgt)]
    pairs = [(a, b) for a, b in pairs if a and b]
    test = [
        (" ".join(a.lower().split()), " ".join(b.lower().split()))
        for a, b in zip(src_lines, tgt_lines)
    ]
    test_keep = [k for k, (a, b) in enumerate(test) if a and b]
    pairs += [test[k] for k in test_keep]
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
        fwd_lines = fwd_path.read_text(encoding="utf-8").splitlines()
        rev_lines = rev_path.read_text(encoding="utf-8").splitlines()
    if len(fwd_lines) != len(pairs) or len(rev_lines) != len(pairs):
        raise AlignError(
            f"eflomal returned {len(fwd_lines)}/{len(rev_lines)} lines for {len(pairs)} pairs"
        )

    def parse(line: str) -> set[Link]:
        return {(int(a), int(b)) for a, _, b in (x.partition("-") for x in line.split())}

    out: list[set[Link]] = [set() for _ in test]
    first = len(pairs) - len(test_keep)
    for n, k in enumerate(test_keep):
        out[k] = symmetrise(parse(fwd_lines[first + n]), parse(rev_lines[first + n]), method)
    return out


# --- the command ------------------------------------------------------------------------------
def _read(path: str, limit: int | None = None) -> list[str]:
    from nmt.data.corpus import read_lines

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return read_lines(path, limit)


def format_table(results: dict[str, dict], sentences: int) -> str:
    """A plain-text table: method, AER, precision, recall, predicted links."""
    rows = [f"{'method':<28} {'AER':>7} {'prec':>7} {'recall':>7} {'links':>7}"]
    for name, r in results.items():
        rows.append(
            f"{name:<28} {r['aer']:7.4f} {r['precision']:7.4f} {r['recall']:7.4f} {r['links']:7d}"
        )
    rows.append(
        f"({sentences} sentence pairs; {next(iter(results.values()))['sure'] if results else 0} sure gold links)"
    )
    return "\n".join(rows)


def _lang_from_path(path: str) -> str | None:
    name = Path(path).name
    name = name[:-3] if name.endswith(".gz") else name
    suffix = Path(name).suffix
    return suffix[1:] if suffix else None


def run_align(args: argparse.Namespace) -> dict:
    """Everything `nmt-align` does, returning the JSON report."""
    limit = args.limit
    src, tgt = _read(args.src, limit), _read(args.tgt, limit)
    gold = read_talp(args.gold)
    if limit is not None:
        gold = GoldAlignment(gold.sure[:limit], gold.possible[:limit])
    if not len(src) == len(tgt) == len(gold):
        raise AlignError(f"{len(src)} source, {len(tgt)} target and {len(gold)} gold lines differ")
    translator = reverse = None
    if args.checkpoint:
        from nmt.translate import Translator

        translator = Translator(args.checkpoint, args.device)
        src_lang, tgt_lang = translator.cfg.data.src_lang, translator.cfg.data.tgt_lang
        if not translator.cfg.data.lowercase:
            print(
                "nmt-align: warning: the model was trained on cased text (data.lowercase=false); "
                "the gold text is lowercased",
                file=sys.stderr,
            )
    else:
        src_lang, tgt_lang = _lang_from_path(args.src), _lang_from_path(args.tgt)
    flipped = gold_is_flipped(args.gold_order, src_lang, tgt_lang)
    if flipped:
        gold = gold.flipped()  # now (model source word, model target word)
    check_bounds(gold, [len(s.split()) for s in src], [len(t.split()) for t in tgt])
    report: dict = {
        "checkpoint": args.checkpoint,
        "reverse_checkpoint": args.reverse_ckpt,
        "direction": f"{src_lang}->{tgt_lang}",
        "gold": args.gold,
        "gold_order": args.gold_order,
        "sentences": len(src),
        "threshold": args.threshold,
        "results": {},
    }
    predictions: dict[str, list[set[Link]]] = {}
    excluded: set[int] = set()
    if translator is not None:
        fw = model_alignments(
            translator,
            src,
            tgt,
            args.threshold,
            args.batch_size,
            args.layer,
            args.head,
            args.renormalize,
        )
        excluded |= set(fw.mismatched)
        predictions["argmax"] = fw.argmax
        predictions[f"threshold>={args.threshold:g}"] = fw.threshold
        if args.reverse_ckpt:
            from nmt.translate import Translator

            reverse = Translator(args.reverse_ckpt, args.device)
            if (reverse.cfg.data.src_lang, reverse.cfg.data.tgt_lang) != (tgt_lang, src_lang):
                print(
                    f"nmt-align: warning: --reverse-ckpt translates {reverse.cfg.data.src_lang}->"
                    f"{reverse.cfg.data.tgt_lang}, expected {tgt_lang}->{src_lang}",
                    file=sys.stderr,
                )
            rv = model_alignments(
                reverse,
                tgt,
                src,
                args.threshold,
                args.batch_size,
                args.layer,
                args.head,
                args.renormalize,
            )
            excluded |= set(rv.mismatched)
            rev_argmax = [flip(x) for x in rv.argmax]
            predictions["reverse argmax"] = rev_argmax
            predictions["intersect"] = [
                symmetrise(a, b, "intersection") for a, b in zip(fw.argmax, rev_argmax)
            ]
            predictions["grow-diag-final"] = [
                symmetrise(a, b, "grow-diag-final") for a, b in zip(fw.argmax, rev_argmax)
            ]
    if args.eflomal:
        train_src = _read(args.train_src, args.max_train_lines) if args.train_src else []
        train_tgt = _read(args.train_tgt, args.max_train_lines) if args.train_tgt else []
        predictions[f"eflomal ({args.symmetrise})"] = eflomal_align(
            src, tgt, train_src, train_tgt, args.symmetrise, args.train_tokenize
        )
        report["eflomal_train_pairs"] = min(len(train_src), len(train_tgt))
        report["eflomal_sees_test"] = True
    if not predictions:
        raise AlignError("nothing to score: give a checkpoint and/or --eflomal")
    if excluded:
        print(
            f"nmt-align: warning: {len(excluded)} sentence(s) left out: their subword pieces do not "
            f"group into the gold's whitespace words (first: line {min(excluded) + 1})",
            file=sys.stderr,
        )
    keep = [k for k in range(len(src)) if k not in excluded]
    report["excluded_lines"] = sorted(k + 1 for k in excluded)
    for name, pred in predictions.items():
        report["results"][name] = score_alignments(
            [pred[k] for k in keep], [gold.sure[k] for k in keep], [gold.possible[k] for k in keep]
        )
    report["scored_sentences"] = len(keep)
    if args.links_out:
        out = Path(args.links_out)
        out.mkdir(parents=True, exist_ok=True)
        for name, pred in predictions.items():
            fname = re.sub(r"[^A-Za-z0-9.=-]+", "_", name).strip("_") + ".talp"
            lines = [format_talp(flip(p) if flipped else p) for p in pred]
            (out / fname).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt-align",
        description="Alignment error rate of attention (forced decoding of the reference) against "
        "gold word alignments, with an optional eflomal baseline.",
        epilog="Attention is aggregated from subwords to whitespace words: pieces starting with ▁ "
        "begin a word; weights are summed over the source pieces of a word and averaged over the "
        "target pieces of a word. AER = 1 - (|A∩S| + |A∩P|)/(|A| + |S|) (Och & Ney 2003). "
        "See `python -c 'import nmt.align; help(nmt.align)'` for details.",
    )
    parser.add_argument(
        "checkpoint", nargs="?", help="a .pt checkpoint or run folder (optional with --eflomal)"
    )
    parser.add_argument(
        "--src", required=True, help="test text in the model's source language, one sentence a line"
    )
    parser.add_argument(
        "--tgt", required=True, help="reference text in the model's target language"
    )
    parser.add_argument(
        "--gold",
        required=True,
        help="gold alignment, talp format (i-j sure, ipj possible, 1-based)",
    )
    parser.add_argument(
        "--gold-order",
        default="de-en",
        help="language of the first and second gold index: L1-L2 (default de-en: German first), "
        "or src-tgt / tgt-src",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.3, help="weight threshold of the threshold method"
    )
    parser.add_argument(
        "--renormalize", action="store_true", help="rescale rows to 1 after dropping </s>"
    )
    parser.add_argument(
        "--reverse-ckpt",
        help="a model trained in the other direction: adds intersect, grow-diag-final",
    )
    parser.add_argument(
        "--layer", type=int, default=-1, help="Transformer: cross-attention layer (default last)"
    )
    parser.add_argument(
        "--head", type=int, default=None, help="Transformer: one head (default: average of heads)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="sentences per forced-decoding batch"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument(
        "--limit", type=int, default=None, help="use only the first N test sentences"
    )
    parser.add_argument(
        "--eflomal",
        action="store_true",
        help="add the eflomal baseline (trained on train + test text)",
    )
    parser.add_argument("--train-src", help="eflomal training text, source side (plain or .gz)")
    parser.add_argument("--train-tgt", help="eflomal training text, target side (plain or .gz)")
    parser.add_argument(
        "--max-train-lines", type=int, default=None, help="read at most N training lines"
    )
    parser.add_argument(
        "--train-tokenize",
        default="simple",
        choices=["simple", "none"],
        help="eflomal training text: split off punctuation like the gold text (simple) or only lowercase (none)",
    )
    parser.add_argument(
        "--symmetrise",
        default="grow-diag-final",
        choices=["grow-diag-final", "intersection", "union"],
        help="how eflomal's two directions are combined",
    )
    parser.add_argument("--json", help="write the report as JSON to this file ('-' for stdout)")
    parser.add_argument(
        "--links-out", help="folder for the predicted links of every method (talp, gold order)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.eflomal:
        parser.error("give a checkpoint, --eflomal, or both")
    if bool(args.train_src) != bool(args.train_tgt):
        parser.error("--train-src and --train-tgt go together")
    if not 0.0 < args.threshold <= 1.0:
        parser.error(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    from nmt.checkpoint import CheckpointError
    from nmt.config import ConfigError

    try:
        with torch.no_grad():
            report = run_align(args)
    except (AlignError, CheckpointError, ConfigError, FileNotFoundError) as err:
        print(f"nmt-align: error: {err}", file=sys.stderr)
        return 2
    print(f"direction {report['direction']}, gold {args.gold} ({args.gold_order})")
    print(format_table(report["results"], report["scored_sentences"]))
    if args.json:
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
