"""`nmt-translate`: translate a text file or stdin with a checkpoint (config and SentencePiece inside).

Output line i is the translation of input line i; an empty input line gives an empty output line.
`--attention-out FILE` writes one JSON object per input line:
{"line": i, "source_tokens": [...], "target_tokens": [...], "attention": [[w_ts, ...], ...]}
with one attention row per target token over the source tokens (source pieces plus "</s>").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import torch

from nmt.checkpoint import CheckpointError, load_checkpoint
from nmt.config import Config, ConfigError, to_dataclass
from nmt.data.tokenizer import Tokenizer
from nmt.decoding import Hypothesis, decode_corpus
from nmt.models import build_model, reduce_attention
from nmt.trainer import autocast, pick_device, source_limit


class Translator:
    """A model, its tokenizer and its decode settings, loaded from one checkpoint."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", precision: str | None = None):
        ckpt = load_checkpoint(checkpoint)
        try:
            self.cfg: Config = to_dataclass(ckpt["config"])
            self.tokenizer = Tokenizer.from_dict(ckpt["tokenizer"])
        except (ConfigError, KeyError, TypeError) as err:
            raise CheckpointError(f"{checkpoint}: incompatible checkpoint contents ({err})") from None
        self.device = pick_device(device)
        self.precision = precision or self.cfg.trainer.precision
        self.model = build_model(
            self.cfg.model, self.cfg.attention, self.tokenizer.src_vocab_size, self.tokenizer.tgt_vocab_size
        )
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"{checkpoint}: weights do not match the model ({first})") from None
        self.model.to(self.device).eval()
        limit = source_limit(self.cfg)
        self.max_src_len = limit if limit is not None else 4 * self.cfg.data.max_len

    def translate(
        self,
        lines: list[str],
        beam: int | None = None,
        batch_size: int | None = None,
        need_attention: bool = False,
        length_penalty: float | None = None,
    ) -> tuple[list[str], list[Hypothesis | None]]:
        """Translate raw sentences; empty lines give empty output and no hypothesis."""
        d = self.cfg.decode
        if self.cfg.data.lowercase:
            lines = [line.lower() for line in lines]
        keep = [i for i, line in enumerate(lines) if line.strip()]
        ids = self.tokenizer.encode_src([lines[i] for i in keep])
        with autocast(self.device, self.precision):
            hyps = decode_corpus(
                self.model,
                ids,
                beam or d.beam,
                d.length_penalty if length_penalty is None else length_penalty,
                d.max_len_a,
                d.max_len_b,
                batch_size or d.batch_size,
                self.device,
                need_attention,
                self.max_src_len,
            )
        out: list[str] = [""] * len(lines)
        full: list[Hypothesis | None] = [None] * len(lines)
        for i, text, h in zip(keep, self.tokenizer.decode_tgt([h.tokens for h in hyps]), hyps):
            out[i], full[i] = text, h
        return out, full

    def attention_record(
        self, index: int, line: str, hyp: Hypothesis | None, layer: int = -1, head: int | None = None
    ) -> dict:
        """The JSON object `--attention-out` writes for one input line."""
        if hyp is None or hyp.attention is None:
            return {"line": index, "source_tokens": [], "target_tokens": [], "attention": []}
        text = line.lower() if self.cfg.data.lowercase else line
        src = self.tokenizer.src_pieces(text)[: self.max_src_len] + ["</s>"]
        weights = reduce_attention(hyp.attention, layer, head)  # (T, S)
        return {
            "line": index,
            "source_tokens": src,
            "target_tokens": self.tokenizer.tgt_pieces_from_ids(hyp.tokens),
            "attention": [[round(float(w), 5) for w in row] for row in weights],
        }


def read_lines_lenient(stream: Iterable[bytes], name: str) -> Iterator[str]:
    """Decode UTF-8 line by line; invalid bytes become U+FFFD with a warning naming the line."""
    for number, raw in enumerate(stream, start=1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            print(
                f"nmt-translate: warning: {name}:{number}: invalid UTF-8 (byte 0x{raw[err.start]:02x} at "
                f"column {err.start + 1}); translated with replacement characters",
                file=sys.stderr,
            )
            yield raw.decode("utf-8", errors="replace")


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def translate_stream(
    translator: Translator,
    lines: Iterator[str],
    out: TextIO,
    beam: int | None,
    batch_size: int,
    attention_out: TextIO | None = None,
    layer: int = -1,
    head: int | None = None,
) -> int:
    """Translate in chunks, writing each chunk as soon as it is done; returns lines written."""
    written = 0
    for chunk in _chunks(lines, max(1, batch_size) * 16):
        texts, hyps = translator.translate(chunk, beam, batch_size, need_attention=attention_out is not None)
        for i, (line, text, hyp) in enumerate(zip(chunk, texts, hyps)):
            out.write(text.replace("\n", " ") + "\n")
            if attention_out is not None:
                record = translator.attention_record(written + i + 1, line, hyp, layer, head)
                attention_out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        written += len(chunk)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nmt-translate", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .pt checkpoint or a run folder (uses checkpoints/best.pt)")
    parser.add_argument("-i", "--input", help="input file (default: stdin)")
    parser.add_argument("-o", "--output", help="output file (default: stdout)")
    parser.add_argument("--beam", type=int, default=None, help="beam size (default: the checkpoint's decode.beam)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--length-penalty", type=float, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--attention-out", help="write attention weights as JSON lines to this file")
    parser.add_argument("--layer", type=int, default=-1, help="Transformer: cross-attention layer")
    parser.add_argument("--head", type=int, default=None, help="Transformer: one head (default: average)")
    args = parser.parse_args(argv)
    if args.beam is not None and args.beam < 1:
        parser.error(f"--beam must be >= 1, got {args.beam}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        translator = Translator(args.checkpoint, args.device)
        if args.input and not Path(args.input).is_file():
            raise FileNotFoundError(f"{args.input}: no such input file")
        src = open(args.input, "rb") if args.input else sys.stdin.buffer
        name = args.input or "<stdin>"
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
        att = open(args.attention_out, "w", encoding="utf-8") if args.attention_out else None
        torch.set_grad_enabled(False)
        with src:
            translate_stream(
                translator, read_lines_lenient(src, name), out, args.beam, args.batch_size, att, args.layer, args.head
            )
        if att:
            att.close()
        if args.output:
            out.close()
    except (CheckpointError, FileNotFoundError, ConfigError) as err:
        print(f"nmt-translate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
