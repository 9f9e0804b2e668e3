"""`nmt-plot`: attention heatmaps (target tokens as rows, source tokens as columns) as PNG or SVG.

`nmt-plot` draws a heatmap PNG (and SVG with `--svg` or an `.svg` output path) either

- from an `nmt-translate --attention-out` JSON lines file (`--line N`, repeatable, picks the
  record whose "line" is N; default: the first record), or
- from a checkpoint (a .pt file or a run folder) and a sentence: `--src "..."` translates it
  with beam search; adding `--ref "..."` instead forces the reference (teacher forcing) and plots
  the attention the model pays while producing that reference.

`--merge-subwords` merges SentencePiece pieces into words (a piece starting with `▁` begins a
word): the weights of the **source pieces of a word are summed** and those of the **target
pieces of a word are averaged**, so every target row stays a distribution over the source. The
end-of-sentence column `</s>` stays a column of its own.

Transformer checkpoints: `--layer` picks the cross-attention layer (default the last) and
`--head` one head (default: the average over the heads of that layer). A JSON lines file holds
attention already reduced by `nmt-translate --layer/--head`.

Labels use matplotlib's default font (DejaVu Sans, which has umlauts and `▁`); for long
sentences the cells and the label font shrink and labels longer than 18 characters are cut.
This module reads records and calls `nmt.viz`, which draws.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmt.viz import plot_heatmap  # the trainer and older callers import it from here


def merge_subwords(
    weights: np.ndarray, src_tokens: Sequence[str], tgt_tokens: Sequence[str]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Merge SentencePiece pieces into words: sum over the source pieces of a word, average over
    the target pieces of a word (see `nmt.align.aggregate_to_words`); `</s>` stays on its own."""
    from nmt.align import aggregate_to_words, merge_pieces, piece_word_ids

    weights = np.asarray(weights, dtype=np.float64)
    src_tokens, tgt_tokens = (
        list(src_tokens)[: weights.shape[1]],
        list(tgt_tokens)[: weights.shape[0]],
    )
    merged = aggregate_to_words(weights, piece_word_ids(src_tokens), piece_word_ids(tgt_tokens))
    return merged, merge_pieces(src_tokens), merge_pieces(tgt_tokens)


# --- inputs ----------------------------------------------------------------------------------
def read_records(path: str | Path, lines: Sequence[int] | None = None) -> list[dict]:
    """Records of an `--attention-out` file: those whose "line" is in `lines` (in that order;
    the N-th record if no record has that number), or the first one when `lines` is None."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                try:
                    records.append(json.loads(raw))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
    if not records:
        raise ValueError(f"{path}: no records")
    if lines is None:
        return records[:1]
    by_line = {r.get("line"): r for r in records}
    out = []
    for n in lines:
        if n in by_line:
            out.append(by_line[n])
        elif 1 <= n <= len(records):
            out.append(records[n - 1])
        else:
            raise ValueError(f"{path}: no record for line {n} ({len(records)} records)")
    return out


def describe_model(cfg: Any, layer: int = -1, head: int | None = None) -> str:
    """Title text from a checkpoint config: "rnn · bahdanau" or "transformer · layer -1, mean of heads"."""
    arch = getattr(cfg.model, "arch", "?")
    if arch == "transformer":
        which = "mean of heads" if head is None else f"head {head}"
        return f"transformer · layer {layer}, {which}"
    return f"{arch} · {cfg.attention.type}"


def records_from_checkpoint(
    checkpoint: str | Path,
    sources: Sequence[str],
    refs: Sequence[str] | None = None,
    layer: int = -1,
    head: int | None = None,
    beam: int | None = None,
    device: str = "cpu",
) -> list[dict]:
    """Attention records (the `--attention-out` layout plus "model"/"title") for sentences:
    beam-search translations, or forced decoding of `refs` when given."""
    from nmt.align import check_layer_head
    from nmt.translate import Translator

    tr = Translator(checkpoint, device)
    check_layer_head(tr.cfg, layer, head)
    name = describe_model(tr.cfg, layer, head)
    if refs is None:
        return _beam_records(tr, sources, name, layer, head, beam)
    if len(refs) != len(sources):
        raise ValueError(f"{len(sources)} --src but {len(refs)} --ref sentences")
    return _forced_records(tr, sources, refs, name, layer, head)


def _beam_records(
    tr: Any, sources: Sequence[str], name: str, layer: int, head: int | None, beam: int | None
) -> list[dict]:
    """The attention of beam-search translations, one record per source sentence."""
    import torch

    with torch.no_grad():
        _, hyps = tr.translate(list(sources), beam=beam, need_attention=True)
    return [
        {**tr.attention_record(i, line, hyp, layer, head), "model": name, "title": name}
        for i, (line, hyp) in enumerate(zip(sources, hyps), start=1)
    ]


def _forced_records(
    tr: Any,
    sources: Sequence[str],
    refs: Sequence[str],
    name: str,
    layer: int,
    head: int | None,
) -> list[dict]:
    """The attention the model pays while forced to produce each reference (teacher forcing).

    Token labels come from `Translator.prepare`, the normalisation the model was trained with
    (`data.lowercase`, `data.tokenize`)."""
    from nmt.align import forced_attention

    atts = forced_attention(tr, sources, refs, layer=layer, head=head)
    out = []
    for i, (line, ref, att) in enumerate(zip(sources, refs, atts), start=1):
        src = tr.source_labels(line)
        tgt = tr.tokenizer.tgt_pieces(tr.prepare(ref))
        out.append(
            {
                "line": i,
                "source_tokens": src,
                "target_tokens": tgt,
                "attention": att[: len(tgt)].tolist(),  # the row that predicts EOS is left out
                "model": name,
                "title": f"{name} · forced",
            }
        )
    return out


def record_title(record: dict, source: str) -> str:
    if record.get("title"):
        return str(record["title"])
    # "attention" is the weight matrix in these records; the mechanism goes under "mechanism"
    parts = [
        str(record[k])
        for k in ("model", "mechanism")
        if isinstance(record.get(k), str) and record[k]
    ]
    if "layer" in record or "head" in record:
        head = record.get("head")
        parts.append(
            f"layer {record.get('layer', -1)}, {'mean of heads' if head is None else f'head {head}'}"
        )
    return " · ".join(parts) or f"{Path(source).name} line {record.get('line', '?')}"


def output_paths(output: str | Path, count: int, lines: Sequence[int]) -> list[Path]:
    """`output` for one plot; `stem_N.suffix` for each of several."""
    output = Path(output)
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{n}{output.suffix or '.png'}") for n in lines[:count]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmt-plot",
        description="Draw attention heatmaps (target rows, source columns) from an "
        "nmt-translate --attention-out file or from a checkpoint and sentences.",
        epilog="--merge-subwords: a piece starting with ▁ begins a word; source pieces of a word are "
        "summed, target pieces of a word are averaged (rows stay distributions); </s> stays a column.",
    )
    add = parser.add_argument
    add("input", help="an --attention-out JSON lines file, or a checkpoint (.pt / run folder)")
    add("-o", "--output", default="attention.png", help="output image (.png or .svg)")
    add("--line", type=int, action="append", help="JSON input: record of input line N (repeatable)")
    add("--src", action="append", help="checkpoint input: a source sentence (repeatable)")
    add(
        "--ref",
        action="append",
        help="checkpoint input: reference for forced decoding (one per --src)",
    )
    add("--layer", type=int, default=-1, help="Transformer checkpoint: cross-attention layer")
    add("--head", type=int, default=None, help="Transformer checkpoint: head (default: average)")
    add("--beam", type=int, default=None, help="checkpoint input without --ref: beam size")
    add("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    add("--merge-subwords", action="store_true", help="merge pieces into words (see below)")
    add("--svg", action="store_true", help="also write an SVG next to the PNG")
    add("--title", help="plot title (default: model and attention mechanism)")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Whether the input is a checkpoint; usage errors exit through `parser.error`."""
    path = Path(args.input)
    is_ckpt = path.is_dir() or path.suffix == ".pt"
    if is_ckpt and not args.src:
        parser.error("a checkpoint needs --src SENTENCE")
    if not is_ckpt and (args.src or args.ref):
        parser.error("--src/--ref go with a checkpoint, not a JSON lines file")
    if args.ref and len(args.ref) != len(args.src):
        parser.error("give one --ref per --src")
    return is_ckpt


def _records(args: argparse.Namespace, is_ckpt: bool) -> tuple[list[dict], list[int]]:
    """The records to draw and the line number each output file is named after."""
    path = Path(args.input)
    if is_ckpt:
        records = records_from_checkpoint(
            path, args.src, args.ref, args.layer, args.head, args.beam, args.device
        )
        return records, list(range(1, len(records) + 1))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    records = read_records(path, args.line)
    return records, args.line or [int(records[0].get("line", 1))]


def _draw(record: dict, out: Path, args: argparse.Namespace) -> None:
    """One heatmap file (and its SVG copy); an empty record is skipped with a warning."""
    weights = np.asarray(record.get("attention") or [], dtype=np.float64)
    src, tgt = record.get("source_tokens", []), record.get("target_tokens", [])
    if weights.size == 0:
        print(
            f"nmt-plot: warning: line {record.get('line')}: no attention (empty line?); skipped",
            file=sys.stderr,
        )
        return
    weights = weights.reshape(len(weights), -1)  # (T, S)
    if args.merge_subwords:
        weights, src, tgt = merge_subwords(weights, src, tgt)
    title = args.title or record_title(record, str(args.input))
    plot_heatmap(weights, src, tgt, out, title, svg=args.svg)
    print(out)
    if args.svg and out.suffix.lower() != ".svg":
        print(out.with_suffix(".svg"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    is_ckpt = _check_args(parser, args)
    from nmt.checkpoint import CheckpointError
    from nmt.config import ConfigError

    try:
        records, numbers = _records(args, is_ckpt)
        for record, out in zip(records, output_paths(args.output, len(records), numbers)):
            _draw(record, out, args)
    except (CheckpointError, ConfigError, FileNotFoundError, ValueError) as err:  # AlignError too
        print(f"nmt-plot: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
