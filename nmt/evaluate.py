"""`nmt-evaluate CHECKPOINT --src F --ref F`: translate and score with sacreBLEU (BLEU, chrF, signatures)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from nmt.cli import run_main
from nmt.data.corpus import DataError, read_lines
from nmt.files import atomic_write_text
from nmt.metrics import bleu_by_length, corpus_scores
from nmt.translate import add_decode_arguments, translator_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nmt-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--src", required=True, help="source file (plain or .gz)")
    parser.add_argument(
        "--ref", required=True, help="reference file (plain or .gz), raw detokenized text"
    )
    parser.add_argument("--beam", type=int, default=None)
    add_decode_arguments(parser)
    parser.add_argument("--hyp-out", help="also write the hypotheses here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.beam is not None and args.beam < 1:
        parser.error(f"--beam must be >= 1, got {args.beam}")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    return run_main("nmt-evaluate", lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    src, ref = read_lines(args.src), read_lines(args.ref)
    if len(src) != len(ref):
        raise DataError(f"{args.src} has {len(src)} lines but {args.ref} has {len(ref)}")
    if not src:
        raise DataError(f"{args.src}: no sentences to evaluate (empty file)")
    translator = translator_from_args(args)
    tick = time.perf_counter()
    hyps, _ = translator.translate(
        src, args.beam, args.batch_size, length_penalty=args.length_penalty
    )
    seconds = time.perf_counter() - tick
    if args.hyp_out:
        atomic_write_text(args.hyp_out, "".join(h + "\n" for h in hyps))
    scores = corpus_scores(hyps, ref)
    scores["sentences"] = len(hyps)
    scores["sents_per_s"] = round(len(hyps) / max(seconds, 1e-9), 2)
    scores["bleu_by_length"] = bleu_by_length(hyps, ref, src)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"BLEU {scores['bleu']:.2f}  {scores['bleu_signature']}")
        print(f"chrF {scores['chrf']:.2f}  {scores['chrf_signature']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
