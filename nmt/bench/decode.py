"""Decoding speed: greedy and beam-5 over test2016 (the first --decode-sents sentences).

The model decoded is the one the workload has just trained, or, with `--decode-ckpt NAME=PATH`,
a trained checkpoint loaded through `nmt.translate.Translator` (so its text goes through
`Translator.prepare`, as `nmt-translate` would see it). Only decoding is timed: the sources
are encoded first.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nmt.bench.system import sync


@dataclass
class DecodeTarget:
    """A model to decode, with its encoded sources, the references and its tokenizer."""

    translate: Callable[[list, int], list]  # (source ids, beam) -> hypotheses
    sources: list  # encoded test sentences (no EOS)
    references: list[str]
    tokenizer: Any
    origin: str  # what was decoded, for bench.json's "decode_model"


def _n_sentences(args: argparse.Namespace, test: Any) -> int:
    n = len(test.src_text)
    return n if args.decode_sents is None else min(args.decode_sents, n)


def checkpoint_target(path: str, args: argparse.Namespace, device: Any, test: Any, k: int):
    """The trained model at `path` (a run folder or a checkpoint) as a DecodeTarget."""
    from nmt.checkpoint import resolve_checkpoint
    from nmt.translate import Translator

    ckpt = resolve_checkpoint(path)
    tr = Translator(ckpt, str(device), args.precision)
    sources = tr.tokenizer.encode_src([tr.prepare(line) for line in test.src_text[:k]])

    def translate(src: list, beam: int) -> list:
        return tr.translate_ids(src, beam, args.decode_batch)

    return DecodeTarget(translate, sources, test.tgt_text[:k], tr.tokenizer, str(ckpt))


def decode_target(args: argparse.Namespace, trainer: Any, name: str) -> DecodeTarget:
    """The model `--decode-ckpt` names for workload `name`, else the one just trained."""
    test = trainer.data.test
    k = _n_sentences(args, test)
    ckpts = dict(item.split("=", 1) for item in args.decode_ckpt)
    if name in ckpts:
        return checkpoint_target(ckpts[name], args, trainer.device, test, k)
    return DecodeTarget(
        lambda src, beam: trainer.translate_ids(src, beam),  # decode.batch_size=--decode-batch
        [test.src[i] for i in range(k)],
        test.tgt_text[:k],
        trainer.tokenizer,
        f"this run after {args.warmup + args.steps} steps",
    )


def run_decode(args: argparse.Namespace, trainer: Any, name: str) -> dict[str, Any]:
    """bench.json's decoding fields: speed, hypothesis length and BLEU, greedy and beam 5."""
    from nmt.metrics import corpus_scores

    target = decode_target(args, trainer, name)
    sources = target.sources
    out: dict[str, Any] = {"decode_sents": len(sources), "decode_model": target.origin}
    if not sources:
        return out
    target.translate(sources[: min(8, len(sources))], 1)  # one-time initialisation, not timed
    for label, beam in (("greedy", 1), ("beam5", 5)):
        sync(trainer.device)
        tick = time.perf_counter()
        hyps = target.translate(sources, beam)
        sync(trainer.device)
        seconds = time.perf_counter() - tick
        out[f"{label}_s"] = round(seconds, 3)
        out[f"{label}_sents_per_s"] = round(len(sources) / seconds, 2)
        out[f"{label}_hyp_len_mean"] = round(sum(len(h.tokens) for h in hyps) / len(hyps), 2)
        text = target.tokenizer.decode_tgt([h.tokens for h in hyps])
        out[f"{label}_bleu"] = round(corpus_scores(text, target.references)["bleu"], 2)
    out["src_len_mean"] = round(sum(len(s) for s in sources) / len(sources), 2)
    return out
