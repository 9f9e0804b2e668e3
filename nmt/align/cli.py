"""The `nmt-align` command line: arguments, the printed table and the JSON report."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from nmt.align.run import run_align
from nmt.config import SYMMETRISATIONS
from nmt.errors import UserError
from nmt.files import atomic_write_text
from nmt.models.hard_attention import HARD_INFERENCE


def _add_test_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--limit", type=int, default=None, help="use only the first N test sentences"
    )
    parser.add_argument(
        "--lines",
        help="score only lines A-B of the test set (1-based, inclusive; e.g. 1-100 to choose "
        "settings, 101-508 to report)",
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.3],
        help="weight threshold of the threshold method; comma-separated values (0.2,0.3) give "
        "one method each",
    )
    parser.add_argument(
        "--renormalize", action="store_true", help="rescale rows to 1 after dropping </s>"
    )
    parser.add_argument(
        "--reverse-ckpt",
        help="a model trained in the other direction: adds its argmax and threshold links and "
        "their intersection, grow-diag and grow-diag-final with the model's, and the links of "
        "both directions' weights combined (agreement), per read-out",
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
        "--hard-inference",
        choices=HARD_INFERENCE,
        default=None,
        help="hard-attention models (both directions): read the argmax position (one-hot rows) "
        "or the soft distribution it is drawn from (default: the checkpoint's "
        "attention.hard_inference)",
    )


def _add_eflomal_arguments(parser: argparse.ArgumentParser) -> None:
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
        help="eflomal training text: split off punctuation like the gold text (simple) "
        "or only lowercase (none)",
    )
    parser.add_argument(
        "--symmetrise",
        default="grow-diag-final",
        choices=SYMMETRISATIONS,
        help="how eflomal's two directions are combined",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt-align",
        description="Alignment error rate of attention (forced decoding of the reference) against "
        "gold word alignments, with an optional eflomal baseline.",
        epilog="Attention is aggregated from subwords to the gold text's whitespace words: "
        "weights are summed over the source pieces of a word and averaged over the target "
        "pieces of a word. AER = 1 - (|A∩S| + |A∩P|)/(|A| + |S|) (Och & Ney 2003). "
        "See `python -c 'import nmt.align; help(nmt.align)'` for details.",
    )
    _add_test_arguments(parser)
    _add_model_arguments(parser)
    _add_eflomal_arguments(parser)
    parser.add_argument("--json", help="write the report as JSON to this file ('-' for stdout)")
    parser.add_argument(
        "--links-out", help="folder for the predicted links of every method (talp, gold order)"
    )
    parser.add_argument(
        "--plot-lines",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[],
        help="comma-separated test lines (1-based) to draw: word-level attention with the gold "
        "and the argmax links, per read-out (needs --plot-dir)",
    )
    parser.add_argument("--plot-dir", help="folder for the --plot-lines figures")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors argparse cannot see on its own (exit 2 with the usage line)."""
    if not args.checkpoint and not args.eflomal:
        parser.error("give a checkpoint, --eflomal, or both")
    if bool(args.train_src) != bool(args.train_tgt):
        parser.error("--train-src and --train-tgt go together")
    for threshold in args.threshold:
        if not 0.0 < threshold <= 1.0:
            parser.error(f"--threshold must be in (0, 1], got {threshold}")
    if bool(args.plot_lines) != bool(args.plot_dir):
        parser.error("--plot-lines and --plot-dir go together")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")


def format_table(results: dict[str, dict], sentences: int) -> str:
    """A plain-text table: method, AER, precision, recall, predicted links."""
    w = max([32, *map(len, results)])
    rows = [f"{'method':<{w}} {'AER':>7} {'prec':>7} {'recall':>7} {'links':>7}"]
    for name, r in results.items():
        rows.append(
            f"{name:<{w}} {r['aer']:7.4f} {r['precision']:7.4f} {r['recall']:7.4f} {r['links']:7d}"
        )
    sure = next(iter(results.values()))["sure"] if results else 0
    rows.append(f"({sentences} sentence pairs; {sure} sure gold links)")
    return "\n".join(rows)


def write_report(report: dict, path: str) -> None:
    """The report as JSON, to `path` (atomically) or to stdout for `-`."""
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        with torch.no_grad():
            report = run_align(args)
    except (UserError, FileNotFoundError) as err:  # AlignError, CheckpointError, DataError, ...
        print(f"nmt-align: error: {err}", file=sys.stderr)
        return 2
    print(
        f"direction {report['direction']}, gold {args.gold} ({args.gold_order}), "
        f"lines {report['lines']}"
    )
    print(format_table(report["results"], report["scored_sentences"]))
    if args.json:
        write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
