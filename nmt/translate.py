"""`nmt-translate`: translate a text file or stdin with a checkpoint (config and SentencePiece inside).

Output line i is the translation of input line i; an empty input line gives an empty output line.
`--attention-out FILE` writes one JSON object per input line:
{"line": i, "source_tokens": [...], "target_tokens": [...], "attention": [[w_ts, ...], ...]}
with one attention row per target token over the source tokens (source pieces plus "</s>").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from nmt.checkpoint import CheckpointError, load_checkpoint
from nmt.cli import run_main
from nmt.config import (
    Config,
    ConfigError,
    RNNConfig,
    TransformerConfig,
    check_output_lengths,
    to_dataclass,
)
from nmt.data.text import normalize
from nmt.data.tokenizer import Tokenizer
from nmt.decoding import Hypothesis, Lengths, decode_corpus
from nmt.models import build_model, reduce_attention, source_limit
from nmt.models.hard_attention import HARD_INFERENCE
from nmt.models.quantize import QUANTIZE, quantize_int8
from nmt.runtime import autocast, pick_device, resolve_precision
from nmt.shortlist import Shortlist

ENGINES = ("torch", "ctranslate2")  # --engine: nmt's own decoder, or CTranslate2 (nmt.ct2)


class Translator:
    """A model, its tokenizer and its decode settings, loaded from one checkpoint."""

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "cpu",
        precision: str | None = None,
        hard_inference: str | None = None,
        quantize: str | None = None,
        engine: str = "torch",
        shortlist: str | Path | None = None,
    ):
        """`hard_inference` (argmax | soft) overrides the checkpoint's attention.hard_inference
        of a hard-attention model (nmt.models.hard_attention); ConfigError for a soft one.
        `quantize="int8"` decodes with int8 linear layers (nmt.models.quantize), CPU, fp32.
        `engine="ctranslate2"`: `checkpoint` is a folder `nmt-export` wrote (nmt.ct2).
        `shortlist`: decode over a vocabulary shortlist file (`nmt-shortlist`, nmt.shortlist);
        ConfigError if it belongs to another model; with int8 the output layer stays float."""
        if engine not in ENGINES:
            raise ConfigError(f"--engine {engine}: one of {', '.join(ENGINES)}")
        self.engine = engine
        self.shortlist: Shortlist | None = None
        if engine == "ctranslate2":
            self._init_ctranslate2(
                checkpoint, device, precision, hard_inference, quantize, shortlist
            )
            return
        ckpt = load_checkpoint(checkpoint, require=("config", "tokenizer", "model"))
        try:
            self.cfg: Config = to_dataclass(ckpt["config"])
            self.tokenizer = Tokenizer.from_dict(ckpt["tokenizer"])
        except (ConfigError, KeyError, TypeError, ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"{checkpoint}: incompatible checkpoint contents ({first})"
            ) from None
        if hard_inference is not None:
            if not isinstance(self.cfg.model, RNNConfig) or self.cfg.attention.hard == "none":
                raise ConfigError(
                    f"--hard-inference {hard_inference}: {checkpoint} has soft attention "
                    "(attention.hard=none); it applies to hard-attention models only"
                )
            self.cfg.attention.hard_inference = hard_inference
        if quantize is not None and quantize not in QUANTIZE:
            raise ConfigError(f"--quantize {quantize}: one of {', '.join(QUANTIZE)}")
        if quantize and (device not in ("cpu", "auto") or precision == "bf16"):
            raise ConfigError(
                f"--quantize {quantize} runs on the CPU with fp32 activations; "
                f"drop --device {device}" + (" --precision bf16" if precision == "bf16" else "")
            )
        self.quantize = quantize
        self.device = pick_device("cpu" if quantize else device, "--device")
        # the checkpoint's trainer.precision unless overridden; `auto` decides from the hardware
        self.precision = resolve_precision(
            "fp32" if quantize else precision or self.cfg.trainer.precision,
            self.device,
            "--precision",
        )
        self.model = build_model(
            self.cfg.model,
            self.cfg.attention,
            self.tokenizer.src_vocab_size,
            self.tokenizer.tgt_vocab_size,
        )
        try:
            self.model.load_state_dict(ckpt["model"])
        except (RuntimeError, TypeError, AttributeError) as err:
            raise CheckpointError(
                f"{checkpoint}: weights do not match the model ({_state_dict_problem(err)})"
            ) from None
        self.model.to(self.device).eval()
        if shortlist is not None:
            self.shortlist = Shortlist.for_model(shortlist, self.tokenizer)
        if quantize == "int8":
            self.model = quantize_int8(self.model, keep_output=self.shortlist is not None)
        limit = source_limit(self.cfg)
        self.max_src_len = limit if limit is not None else 4 * self.cfg.data.max_len

    def _init_ctranslate2(
        self, folder, device, precision, hard_inference, quantize, shortlist
    ) -> None:
        """An exported folder (nmt.ct2); with `shortlist`, decoded over the vocabulary map
        `nmt-export --shortlist` wrote from that same file into the folder."""
        from nmt.ct2 import CTranslate2Model, check_vmap, read_export, vocabulary

        if device not in ("cpu", "auto") or precision == "bf16" or hard_inference:
            raise ConfigError(
                "--engine ctranslate2 runs on the CPU in float32 or int8 (--quantize int8); "
                "drop --device, --precision bf16 and --hard-inference"
            )
        meta = read_export(folder)
        self.cfg = to_dataclass(meta["config"])
        self.tokenizer = Tokenizer.from_dict(meta["tokenizer"])
        self.quantize = quantize
        self.device = pick_device("cpu", "--device")
        self.precision = resolve_precision("fp32", self.device, "--precision")
        if shortlist is not None:
            self.shortlist = Shortlist.for_model(shortlist, self.tokenizer)
            check_vmap(folder, self.shortlist, self.tokenizer, shortlist)
        self.model = CTranslate2Model(
            folder,
            vocabulary(self.tokenizer.src),
            vocabulary(self.tokenizer.tgt),
            quantize,
            use_vmap=shortlist is not None,
        )
        self.max_src_len = source_limit(self.cfg)

    def limit_output(self, min_len: int | None = None, max_len: int | None = None) -> None:
        """Override the checkpoint's `decode.min_len` / `decode.max_len` (output tokens, EOS not
        counted; `nmt.decoding.Lengths`); None keeps the checkpoint's. ConfigError if no output
        can meet them."""
        d = self.cfg.decode
        low = d.min_len if min_len is None else min_len
        high = d.max_len if max_len is None else max_len
        check_output_lengths(low, high, "--min-len", "--max-len")
        d.min_len, d.max_len = low, high

    def prepare(self, line: str) -> str:
        """The text the model sees for one input line (`data.lowercase` / `data.tokenize` applied)."""
        return normalize(line, self.cfg.data.lowercase, self.cfg.data.tokenize)

    def source_labels(self, line: str) -> list[str]:
        """The labels of the source positions the model attends over for one input line:
        its pieces (after `prepare`, cut to the model's source limit), then `</s>`."""
        return self.tokenizer.src_pieces_with_eos(self.prepare(line), self.max_src_len)

    def translate_ids(
        self,
        sources: list,
        beam: int | None = None,
        batch_size: int | None = None,
        need_attention: bool = False,
        length_penalty: float | None = None,
    ) -> list[Hypothesis]:
        """Decode already-encoded sources (token ids, no EOS) with the checkpoint's decode
        settings (`decode.*`; arguments given here override them), in the run's precision."""
        d = self.cfg.decode
        if self.engine == "ctranslate2":
            if need_attention:
                raise ConfigError("attention weights need --engine torch (CTranslate2 has none)")
            return self.model.translate_ids(
                [list(ids)[: self.max_src_len] for ids in sources],
                beam or d.beam,
                d.length_penalty if length_penalty is None else length_penalty,
                Lengths.of(d),
                batch_size or d.batch_size,
            )
        with autocast(self.device, self.precision):
            return decode_corpus(
                self.model,
                sources,
                beam or d.beam,
                d.length_penalty if length_penalty is None else length_penalty,
                Lengths.of(d),
                batch_size or d.batch_size,
                self.device,
                need_attention,
                self.max_src_len,
                None if self.shortlist is None else self.shortlist.vocab,
            )

    def translate(
        self,
        lines: list[str],
        beam: int | None = None,
        batch_size: int | None = None,
        need_attention: bool = False,
        length_penalty: float | None = None,
        on_truncate: Callable[[int, int], None] | None = None,
    ) -> tuple[list[str], list[Hypothesis | None]]:
        """Translate raw sentences; output i belongs to input i, always.

        A line with no tokens after normalisation (empty, whitespace or control characters
        only) gives an empty output and no hypothesis. A line longer than the model's source
        limit is translated from its first `max_src_len` tokens; `on_truncate(index, n_tokens)`
        is called for it.
        """
        ids = self.tokenizer.encode_src([self.prepare(line) for line in lines])
        keep = [i for i, seq in enumerate(ids) if seq and lines[i].strip()]  # U+0085 gets a piece
        if on_truncate is not None:
            for i in keep:
                if len(ids[i]) > self.max_src_len:
                    on_truncate(i, len(ids[i]))
        hyps = self.translate_ids(
            [ids[i] for i in keep], beam, batch_size, need_attention, length_penalty
        )
        out: list[str] = [""] * len(lines)
        full: list[Hypothesis | None] = [None] * len(lines)
        for i, text, h in zip(keep, self.tokenizer.decode_tgt([h.tokens for h in hyps]), hyps):
            out[i], full[i] = one_line(text), h
        return out, full

    def attention_record(
        self,
        index: int,
        line: str,
        hyp: Hypothesis | None,
        layer: int = -1,
        head: int | None = None,
    ) -> dict:
        """The JSON object `--attention-out` writes for one input line."""
        if hyp is None or hyp.attention is None:
            return {"line": index, "source_tokens": [], "target_tokens": [], "attention": []}
        src = self.source_labels(line)
        weights = reduce_attention(hyp.attention, layer, head)  # (T, S)
        arch = self.cfg.model.arch
        return {
            "line": index,
            "model": arch,
            "mechanism": self.cfg.attention.type if arch == "rnn" else None,
            **({"layer": layer, "head": head} if arch == "transformer" else {}),
            "source_tokens": src,
            "target_tokens": self.tokenizer.tgt_pieces_from_ids(hyp.tokens),
            "attention": [[round(float(w), 5) for w in row] for row in weights],
        }


def _state_dict_problem(err: BaseException) -> str:
    """The informative line of a load_state_dict error (missing / unexpected keys, shapes)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines if not line.startswith("Error(s) in loading")]
    text = (detail or lines or [type(err).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def one_line(text: str) -> str:
    """`text` without line breaks of any kind (\\n, \\r, U+2028, ...), so that output line i
    always belongs to input line i, however the output is read."""
    return " ".join(text.splitlines())


def json_line(record: dict) -> str:
    """One JSON line, readable as text: also escapes U+0085, U+2028 and U+2029, which JSON
    allows raw but `str.splitlines()` and many editors treat as line breaks."""
    text = json.dumps(record, ensure_ascii=False)
    for char in ("\x85", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


def read_lines_lenient(stream: Iterable[bytes], name: str) -> Iterator[str]:
    """Decode UTF-8 line by line; invalid bytes become U+FFFD with a warning naming the line.

    Only b"\\n" ends a line (a trailing "\\r" is dropped too), so other characters that some
    tools treat as line breaks (U+2028, \\x0b, \\x85, ...) never shift the output lines.
    """
    for number, raw in enumerate(stream, start=1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            warn(
                f"{name}:{number}: invalid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                f"{err.start + 1}); translated with replacement characters"
            )
            yield raw.decode("utf-8", errors="replace")


def warn(message: str) -> None:
    print(f"nmt-translate: warning: {message}", file=sys.stderr)


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
    length_penalty: float | None = None,
    name: str = "<stdin>",
) -> int:
    """Translate in chunks, writing each chunk as soon as it is done; returns lines written."""
    written = 0
    for chunk in _chunks(lines, max(1, batch_size) * 16):

        def truncated(i: int, n: int, first: int = written) -> None:
            warn(
                f"{name}:{first + i + 1}: {n} source tokens, more than the model's limit of "
                f"{translator.max_src_len}; only the first {translator.max_src_len} are translated"
            )

        texts, hyps = translator.translate(
            chunk, beam, batch_size, attention_out is not None, length_penalty, truncated
        )
        for i, (line, text, hyp) in enumerate(zip(chunk, texts, hyps)):
            out.write(one_line(text) + "\n")
            if attention_out is not None:
                record = translator.attention_record(written + i + 1, line, hyp, layer, head)
                attention_out.write(json_line(record))
        out.flush()
        written += len(chunk)
    return written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nmt-translate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint", help="a .pt checkpoint or a run folder (uses checkpoints/best.pt)"
    )
    parser.add_argument("-i", "--input", help="input file (default: stdin)")
    parser.add_argument("-o", "--output", help="output file (default: stdout)")
    parser.add_argument(
        "--beam", type=int, default=None, help="beam size (default: the checkpoint's decode.beam)"
    )
    add_decode_arguments(parser)
    parser.add_argument(
        "--attention-out", help="write attention weights as JSON lines to this file"
    )
    parser.add_argument("--layer", type=int, default=-1, help="Transformer: cross-attention layer")
    parser.add_argument(
        "--head", type=int, default=None, help="Transformer: one head (default: average)"
    )
    return parser


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """--batch-size, --length-penalty, --hard-inference, --quantize, --engine, --device,
    --precision: shared by nmt-translate and nmt-evaluate; decode settings default to the
    checkpoint's."""
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sentences per batch (default: the checkpoint's decode.batch_size)",
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=None,
        help="default: the checkpoint's decode.length_penalty",
    )
    parser.add_argument(
        "--hard-inference",
        default=None,
        choices=list(HARD_INFERENCE),
        help="hard-attention models: read the argmax position or the soft expectation "
        "(default: the checkpoint's attention.hard_inference)",
    )
    parser.add_argument(
        "--quantize",
        default=None,
        choices=list(QUANTIZE),
        help="int8: decode with dynamically quantised int8 linear layers (CPU, fp32 activations)",
    )
    parser.add_argument(
        "--engine",
        default="torch",
        choices=list(ENGINES),
        help="ctranslate2: CHECKPOINT is a folder written by `nmt-export --format ctranslate2` "
        "(Transformer only; float32, or int8 with --quantize int8)",
    )
    parser.add_argument(
        "--min-len",
        type=int,
        default=None,
        help="no end of sentence before this many output tokens (subword pieces); "
        "default: the checkpoint's decode.min_len (0)",
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=None,
        help="at most this many output tokens (besides the checkpoint's decode.max_len_a * "
        "source length + max_len_b, which --min-len raises); --min-len N --max-len N: every "
        "output exactly N tokens, for speed comparisons at equal output length",
    )
    parser.add_argument(
        "--shortlist",
        default=None,
        help="a vocabulary shortlist from `nmt-shortlist RUN` (RUN/shortlist.npz): score only "
        "the target pieces the batch's source pieces select (faster; output may differ); with "
        "--quantize int8 the output layer stays float; with --engine ctranslate2 the folder "
        "must have been exported with the same file (nmt-export --shortlist)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "bf16"],
        help="default: the checkpoint's trainer.precision; auto = bf16 where the hardware has "
        "native bf16 (AVX512-BF16/AMX, a bf16 GPU), else fp32",
    )


def translator_from_args(args: argparse.Namespace) -> Translator:
    """The Translator `args.checkpoint` and the `add_decode_arguments` options describe."""
    translator = Translator(
        args.checkpoint,
        args.device,
        args.precision,
        args.hard_inference,
        args.quantize,
        args.engine,
        args.shortlist,
    )
    translator.limit_output(args.min_len, args.max_len)
    return translator


def check_attention_choice(cfg: Config, layer: int, head: int | None) -> None:
    """Reject a --layer/--head the model does not have (RNN attention has neither)."""
    if not isinstance(cfg.model, TransformerConfig):
        return
    layers, heads = cfg.model.dec_layers, cfg.model.heads
    if not -layers <= layer < layers:
        raise ConfigError(
            f"--layer={layer}: the model has {layers} decoder layers (0..{layers - 1} or -1)"
        )
    if head is not None and not 0 <= head < heads:
        raise ConfigError(f"--head={head}: the model has {heads} heads (0..{heads - 1})")


def _open_output(path: str | None) -> TextIO:
    if path:
        return open(path, "w", encoding="utf-8")
    if hasattr(sys.stdout, "reconfigure"):  # UTF-8 whatever the locale says
        sys.stdout.reconfigure(encoding="utf-8")
    return sys.stdout


def _run(args: argparse.Namespace) -> None:
    if args.input and not Path(args.input).is_file():
        raise FileNotFoundError(f"{args.input}: no such input file")
    translator = translator_from_args(args)
    check_attention_choice(translator.cfg, args.layer, args.head)
    name = args.input or "<stdin>"
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open(args.input, "rb")) if args.input else sys.stdin.buffer
        out = _open_output(args.output)
        if args.output:
            stack.enter_context(out)
        att = (
            stack.enter_context(open(args.attention_out, "w", encoding="utf-8"))
            if args.attention_out
            else None
        )
        lines = read_lines_lenient(src, name)
        translate_stream(
            translator,
            lines,
            out,
            args.beam,
            args.batch_size or translator.cfg.decode.batch_size,
            att,
            args.layer,
            args.head,
            args.length_penalty,
            name,
        )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.beam is not None and args.beam < 1:
        parser.error(f"--beam must be >= 1, got {args.beam}")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    return run_main("nmt-translate", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
