"""`nmt-explore CKPT [CKPT ...] --src FILE [--ref FILE] [--gold FILE] -o page.html`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmt.align.common import AlignError
from nmt.align.gold import read_talp
from nmt.align.run import parse_lines
from nmt.checkpoint import run_folder
from nmt.data.corpus import read_lines
from nmt.errors import UserError
from nmt.explore.data import DEFAULT_METHOD, System, explorer_data
from nmt.explore.page import write_page


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt-explore",
        description="Translate a text with one or more checkpoints and write the attention "
        "explorer (one self-contained HTML page).",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help=".pt file or run folder")
    parser.add_argument("--src", required=True, help="source text, one sentence a line")
    parser.add_argument("--ref", help="reference translations (sentence chrF/BLEU, disagreement)")
    parser.add_argument(
        "--gold",
        help="gold alignment of --src and --ref, talp format (i-j sure, ipj possible, 1-based; "
        "i a word of --src, j a word of --ref)",
    )
    parser.add_argument("--names", help="comma-separated system names (default: from the runs)")
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        help=f"extraction method of the gold view, as nmt-align names it (default {DEFAULT_METHOD!r})",
    )
    parser.add_argument(
        "--layer", type=int, default=-1, help="Transformer layer of the gold view (default: last)"
    )
    parser.add_argument("--lines", help="only lines A-B (1-based, inclusive)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("-o", "--out", required=True, help="the HTML file to write")
    parser.add_argument("--title", default="nmt attention explorer")
    return parser


def system_names(checkpoints: list[str], translators: list, names: str | None) -> list[str]:
    """`--names`, or the mechanism (or `transformer`) and the run folder of each checkpoint."""
    if names is not None:
        out = [n.strip() for n in names.split(",")]
        if len(out) != len(checkpoints) or not all(out):
            raise AlignError(f"--names gives {len(out)} names for {len(checkpoints)} checkpoints")
    else:
        out = []
        for ckpt, tr in zip(checkpoints, translators):
            kind = "transformer" if tr.cfg.model.arch == "transformer" else tr.cfg.attention.type
            out.append(f"{kind} ({run_folder(ckpt).name or ckpt})")
    for k, name in enumerate(out):  # unique names: the page keys systems by name
        if out.index(name) != k:
            out[k] = f"{name} #{k + 1}"
    return out


def run(args: argparse.Namespace) -> Path:
    import torch

    from nmt.checkpoint import resolve_checkpoint
    from nmt.translate import Translator

    sources = read_lines(args.src, what="--src")
    references = read_lines(args.ref, what="--ref") if args.ref else None
    gold = None
    if args.gold:
        if references is None:
            raise AlignError("--gold needs --ref (the links join words of --src and --ref)")
        if not Path(args.gold).is_file():
            raise FileNotFoundError(f"--gold {args.gold}: no such file")
        try:
            gold = read_talp(args.gold)
        except AlignError as err:
            raise AlignError(f"--gold {args.gold}: {err}") from None
    start, end = parse_lines(args.lines)
    if start >= len(sources):
        raise AlignError(f"--lines {args.lines}: {args.src} has {len(sources)} lines")
    sources = sources[start:end]
    references = references[start:end] if references is not None else None
    gold = gold.select(start, end) if gold is not None else None
    translators = [Translator(resolve_checkpoint(c), args.device) for c in args.checkpoints]
    names = system_names(args.checkpoints, translators, args.names)
    systems = [System(n, tr) for n, tr in zip(names, translators)]
    with torch.no_grad():
        data = explorer_data(
            systems, sources, references, gold, args.method, args.layer, args.batch_size
        )
    return write_page({"title": args.title, "subtitle": f"{args.src}", "explorer": data}, args.out)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        path = run(args)
    except (UserError, FileNotFoundError) as err:  # AlignError, CheckpointError, DataError, ...
        print(f"nmt-explore: error: {err}", file=sys.stderr)
        return 2
    size = path.stat().st_size
    print(f"nmt-explore: wrote {path} ({size / 1e6:.2f} MB)", file=sys.stderr)
    return 0
