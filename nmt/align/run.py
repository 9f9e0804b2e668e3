"""What `nmt-align` does, step by step: read the test set, predict links with every method
asked for (attention of one or two models, eflomal), score them all on the same sentences.

Predictions are kept in the model's (source word, target word) orientation; the gold is
flipped into it once, and links written with `--links-out` are flipped back into gold order.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import numpy as np

from nmt.align.baseline import eflomal_align
from nmt.align.common import AlignError, Link
from nmt.align.forced import (
    ModelLinks,
    check_layer_head,
    model_alignments,
    readout_attention,
    readouts,
)
from nmt.align.gold import (
    GoldAlignment,
    check_bounds,
    flip,
    format_talp,
    gold_is_flipped,
    read_talp,
)
from nmt.align.links import (
    AGREEMENT,
    COMBINES,
    agreement_weights,
    extract,
    extraction_names,
    method_name,
    score_alignments,
    symmetrise,
)
from nmt.data.corpus import read_lines
from nmt.files import atomic_write_text
from nmt.rundir import hard_attention
from nmt.translate import Translator
from nmt.viz import plot_alignment

Predictions = dict[str, list[set[Link]]]  # method name -> links per sentence


@dataclass
class GoldCorpus:
    """Test sentences and their gold links, in the model's (source, target) orientation."""

    src: list[str]
    tgt: list[str]
    gold: GoldAlignment
    src_lang: str | None
    tgt_lang: str | None
    flipped: bool  # whether the gold file lists (target, source)


def _lang_from_path(path: str) -> str | None:
    """The language code a file name ends in: `test.de` or `train.de.gz` -> `de`."""
    name = Path(path).name
    name = name[:-3] if name.endswith(".gz") else name
    suffix = Path(name).suffix
    return suffix[1:] if suffix else None


def _warn(message: str) -> None:
    print(f"nmt-align: warning: {message}", file=sys.stderr)


def load_translator(checkpoint: str, device: str, hard_inference: str | None = None) -> Translator:
    """The model of `checkpoint`, with a warning when it was trained on cased text;
    `hard_inference` (argmax | soft) overrides a hard-attention model's read-out."""
    translator = Translator(checkpoint, device, hard_inference=hard_inference)
    if not translator.cfg.data.lowercase:
        _warn(
            "the model was trained on cased text (data.lowercase=false); "
            "the gold text is lowercased"
        )
    return translator


def hard_readout(translator: Translator | None) -> str | None:
    """A hard-attention model's read-out (argmax | soft, after `--hard-inference`); None for
    soft attention and without a model."""
    if translator is None or hard_attention(asdict(translator.cfg)) == "none":
        return None
    return translator.cfg.attention.hard_inference


def parse_lines(spec: str | None) -> tuple[int, int | None]:
    """`--lines A-B` (1-based, inclusive; `A-` to the end) -> (0-based start, end or None)."""
    if not spec:
        return 0, None
    first, sep, last = spec.partition("-")
    try:
        start, end = int(first), (int(last) if last else None)
    except ValueError:
        start, end = 0, -1
    if not sep or start < 1 or (end is not None and end < start):
        raise AlignError(f"--lines {spec!r}: expected A-B with 1 <= A <= B (or A-), e.g. 101-508")
    return start - 1, end


def read_test_files(
    args: argparse.Namespace,
) -> tuple[list[str], list[str], GoldAlignment, int]:
    """The test lines of both sides and the gold links in `--lines` (or the first `--limit`),
    and the 0-based number of the first line kept."""
    src, tgt, gold = (
        read_lines(args.src, what="--src"),
        read_lines(args.tgt, what="--tgt"),
        read_talp(args.gold),
    )
    if not len(src) == len(tgt) == len(gold):
        raise AlignError(f"{len(src)} source, {len(tgt)} target and {len(gold)} gold lines differ")
    start, end = parse_lines(args.lines)
    end = min(x for x in (end, args.limit, len(src)) if x is not None)
    if start >= end:
        raise AlignError(f"--lines {args.lines}: the files have {len(src)} lines")
    return src[start:end], tgt[start:end], gold.select(start, end), start


def orient(
    args: argparse.Namespace,
    src: list[str],
    tgt: list[str],
    gold: GoldAlignment,
    translator: Translator | None,
) -> GoldCorpus:
    """The test set in the model's direction: that of the checkpoint, else of the file names."""
    if translator is not None:
        src_lang, tgt_lang = translator.cfg.data.src_lang, translator.cfg.data.tgt_lang
    else:
        src_lang, tgt_lang = _lang_from_path(args.src), _lang_from_path(args.tgt)
    flipped = gold_is_flipped(args.gold_order, src_lang, tgt_lang)
    if flipped:
        gold = gold.flipped()  # now (model source word, model target word)
    check_bounds(gold, [len(s.split()) for s in src], [len(t.split()) for t in tgt])
    return GoldCorpus(src, tgt, gold, src_lang, tgt_lang, flipped)


def _model_kwargs(args: argparse.Namespace) -> dict:
    return {
        "thresholds": args.threshold,
        "layer": args.layer,
        "head": args.head,
        "renormalize": args.renormalize,
    }


@dataclass
class ForcedPair:
    """The unreduced forced attention (`readout_attention`) of the model on the test set and,
    with `--reverse-ckpt`, of the reverse model (its source: the test's target lines):
    decoded once, then read for any layer and head (`nmt.align.sweep` reads them all)."""

    forward: list[np.ndarray]
    reverse: Translator | None = None
    backward: list[np.ndarray] | None = None


def forced_pair(args: argparse.Namespace, translator: Translator, test: GoldCorpus) -> ForcedPair:
    """Forced decoding of the test set by the model and the `--reverse-ckpt` model."""
    forward = readout_attention(translator, test.src, test.tgt, args.batch_size)
    if not args.reverse_ckpt:
        return ForcedPair(forward)
    reverse = Translator(args.reverse_ckpt, args.device, hard_inference=args.hard_inference)
    check_layer_head(reverse.cfg, args.layer, args.head)  # before decoding anything
    langs = (reverse.cfg.data.src_lang, reverse.cfg.data.tgt_lang)
    if langs != (test.tgt_lang, test.src_lang):
        _warn(
            f"--reverse-ckpt translates {langs[0]}->{langs[1]}, "
            f"expected {test.tgt_lang}->{test.src_lang}"
        )
    backward = readout_attention(reverse, test.tgt, test.src, args.batch_size)
    return ForcedPair(forward, reverse, backward)


def attention_predictions(
    args: argparse.Namespace,
    translator: Translator,
    test: GoldCorpus,
    first: int = 0,
    forced: ForcedPair | None = None,
) -> tuple[Predictions, set[int]]:
    """The model's links (argmax and threshold of the plain and the shifted read-out) and,
    with `--reverse-ckpt`, the reverse model's links, the symmetrisations of both
    directions' argmax links (`grow-diag`, ...) and threshold links (`grow-diag of
    threshold>=0.3`, ...), and the extractions from both directions' weights combined
    (`agreement`, `agreement of threshold>=0.3`), per read-out; the lines whose pieces do not
    match the gold's words. `first` is the 0-based file line of the first test sentence
    (`--plot-lines` count file lines); `forced`: both models' attention on `test`, when
    already decoded (`forced_pair`), read at `args.layer` and `args.head`."""
    check_layer_head(translator.cfg, args.layer, args.head)  # before decoding
    forced = forced or forced_pair(args, translator, test)
    plots = [k - 1 - first for k in args.plot_lines]
    keep = range(len(test.src)) if args.reverse_ckpt else plots  # agreement needs every line's
    fw = model_alignments(
        translator,
        test.src,
        test.tgt,
        **_model_kwargs(args),
        keep_words=keep,
        attention=forced.forward,
    )
    predictions = dict(fw.links)
    excluded = set(fw.mismatched)
    if args.reverse_ckpt:
        rev, rev_excluded = _reverse_links(args, test, forced)
        excluded |= rev_excluded
        extractions = extraction_names(args.threshold)
        for extraction, readout in product(extractions, readouts(translator)):
            name = method_name(extraction, readout)  # "argmax", "shift-att threshold>=0.3", ...
            predictions[method_name(extraction, readout, "reverse")] = rev.links[name]
            for combine in COMBINES:
                predictions[method_name(extraction, readout, combine)] = [
                    symmetrise(a, b, combine) for a, b in zip(fw.links[name], rev.links[name])
                ]
            predictions[method_name(extraction, readout, AGREEMENT)] = [
                _agreement_links(
                    fw.words.get(k), rev.words.get(k), readout, extractions[extraction]
                )
                for k in range(len(test.src))
            ]
    if args.plot_dir:
        words = {k: fw.words[k] for k in plots if k in fw.words}
        plot_lines(args, test, words, predictions, first)
    return predictions, excluded


def _agreement_links(
    fwd: dict[str, np.ndarray] | None,
    rev: dict[str, np.ndarray] | None,
    readout: str,
    threshold: float | None,
) -> set[Link]:
    """One sentence's links from both directions' word-level weights of a read-out combined
    (`agreement_weights`); `rev` holds the reverse model's (source words, target words)
    weights. None (its pieces do not match the gold's words): no links."""
    if fwd is None or rev is None:
        return set()
    return extract(agreement_weights(fwd[readout], rev[readout].T), threshold)


def plot_lines(
    args: argparse.Namespace,
    test: GoldCorpus,
    words: dict[int, dict[str, np.ndarray]],
    predictions: Predictions,
    first: int,
) -> None:
    """For each `--plot-lines` line: the word-level attention of both read-outs with the gold
    links (sure: squares, possible: dashed) and the read-out's argmax links (dots), in
    `--plot-dir` as line_N.png and line_N_shift.png."""
    for k, by_readout in sorted(words.items()):
        line = first + k + 1
        for readout, weights in by_readout.items():
            name = f"line_{line}{'_shift' if readout else ''}.png"
            argmax = method_name("argmax", readout)
            plot_alignment(
                weights,
                test.src[k].split(),
                test.tgt[k].split(),
                test.gold.sure[k],
                test.gold.possible[k],
                predictions[argmax][k],
                Path(args.plot_dir) / name,
                f"line {line}: {readout or 'plain'} read-out, {argmax} links (dots)",
            )


def _reverse_links(
    args: argparse.Namespace, test: GoldCorpus, forced: ForcedPair
) -> tuple[ModelLinks, set[int]]:
    """The links of the `--reverse-ckpt` model (target -> source), flipped to (source,
    target), and its word-level weights of every line, as it computed them: (its target
    words = the test's source words, its source words = the test's target words)."""
    assert forced.reverse is not None and forced.backward is not None
    keep = range(len(test.src))
    rv = model_alignments(
        forced.reverse,
        test.tgt,
        test.src,
        **_model_kwargs(args),
        keep_words=keep,
        attention=forced.backward,
    )
    flipped = {name: [flip(x) for x in links] for name, links in rv.links.items()}
    return ModelLinks(flipped, rv.mismatched, rv.words), set(rv.mismatched)


def eflomal_predictions(args: argparse.Namespace, test: GoldCorpus) -> tuple[Predictions, int]:
    """The eflomal baseline's links and the number of training pairs it was given."""
    train_src = (
        read_lines(args.train_src, args.max_train_lines, "--train-src") if args.train_src else []
    )
    train_tgt = (
        read_lines(args.train_tgt, args.max_train_lines, "--train-tgt") if args.train_tgt else []
    )
    links = eflomal_align(
        test.src, test.tgt, train_src, train_tgt, args.symmetrise, args.train_tokenize
    )
    return {f"eflomal ({args.symmetrise})": links}, min(len(train_src), len(train_tgt))


def score_all(predictions: Predictions, gold: GoldAlignment, keep: list[int]) -> dict[str, dict]:
    """AER, precision and recall of every method over the same sentences `keep`."""
    sure = [gold.sure[k] for k in keep]
    possible = [gold.possible[k] for k in keep]
    return {
        name: score_alignments([pred[k] for k in keep], sure, possible)
        for name, pred in predictions.items()
    }


def write_links(folder: str | Path, predictions: Predictions, flipped: bool) -> None:
    """One talp file per method, in the gold file's order of indices."""
    for name, pred in predictions.items():
        fname = re.sub(r"[^A-Za-z0-9.=-]+", "_", name).strip("_") + ".talp"
        lines = [format_talp(flip(p) if flipped else p) for p in pred]
        atomic_write_text(Path(folder) / fname, "".join(line + "\n" for line in lines))


def run_align(args: argparse.Namespace) -> dict:
    """Everything `nmt-align` does, returning the JSON report."""
    src, tgt, gold, first = read_test_files(args)
    translator = (
        load_translator(args.checkpoint, args.device, args.hard_inference)
        if args.checkpoint
        else None
    )
    test = orient(args, src, tgt, gold, translator)
    report: dict = {
        "checkpoint": args.checkpoint,
        "reverse_checkpoint": args.reverse_ckpt,
        "direction": f"{test.src_lang}->{test.tgt_lang}",
        "gold": args.gold,
        "gold_order": args.gold_order,
        "lines": f"{first + 1}-{first + len(test.src)}",
        "sentences": len(test.src),
        "thresholds": args.threshold,
        "hard_inference": hard_readout(translator),
        "results": {},
    }
    predictions: Predictions = {}
    excluded: set[int] = set()
    if translator is not None:
        predictions, excluded = attention_predictions(args, translator, test, first)
    if args.eflomal:
        links, report["eflomal_train_pairs"] = eflomal_predictions(args, test)
        predictions.update(links)
        report["eflomal_sees_test"] = True
    if not predictions:
        raise AlignError("nothing to score: give a checkpoint and/or --eflomal")
    if excluded:
        _warn(
            f"{len(excluded)} sentence(s) left out: their subword pieces do not group into "
            f"the gold's whitespace words (first: line {first + min(excluded) + 1})"
        )
    keep = [k for k in range(len(test.src)) if k not in excluded]
    report["excluded_lines"] = sorted(first + k + 1 for k in excluded)
    report["results"] = score_all(predictions, test.gold, keep)
    report["scored_sentences"] = len(keep)
    if args.links_out:
        write_links(args.links_out, predictions, test.flipped)
    return report
