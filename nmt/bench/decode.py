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


def checkpoint_target(
    path: str,
    args: argparse.Namespace,
    device: Any,
    test: Any,
    k: int,
    quantize: str | None = None,
    engine: str = "torch",
    shortlist: Any = None,
):
    """The trained model at `path` (a run folder or a checkpoint; for engine "ctranslate2" an
    exported folder) as a DecodeTarget, decoded by nmt (`quantize`: int8; `shortlist`: over a
    vocabulary shortlist file) or CTranslate2."""
    from nmt.checkpoint import resolve_checkpoint
    from nmt.translate import Translator

    ckpt = path if engine == "ctranslate2" else resolve_checkpoint(path)
    precision = None if quantize or engine != "torch" else args.precision
    tr = Translator(
        ckpt, str(device), precision, quantize=quantize, engine=engine, shortlist=shortlist
    )
    tr.limit_output(args.min_len, args.max_len)
    sources = tr.tokenizer.encode_src([tr.prepare(line) for line in test.src_text[:k]])

    def translate(src: list, beam: int) -> list:
        return tr.translate_ids(src, beam, args.decode_batch)

    return DecodeTarget(translate, sources, test.tgt_text[:k], tr.tokenizer, str(ckpt))


def deploy_targets(path: str, args: argparse.Namespace, test: Any, k: int) -> dict:
    """`--decode-deploy`: the same checkpoint decoded in int8, over its vocabulary shortlist
    (the run's shortlist.npz, or one `nmt.shortlist` builds into the scratch folder) in float
    and in int8 (the output layer float), and, for a Transformer, exported to CTranslate2 (into
    the scratch folder) and decoded there in float32 and int8, without and with the shortlist
    as CTranslate2's vocabulary map. Each target as a function that loads it: the benchmark
    loads one at a time, just before it is timed (CTranslate2's idle worker threads and the
    other models' memory are not there while another decoder is timed)."""
    import functools
    import hashlib
    import logging
    from pathlib import Path

    from nmt.checkpoint import load_checkpoint, resolve_checkpoint, run_folder
    from nmt.config import TransformerConfig, to_dataclass
    from nmt.shortlist import shortlist_for_run
    from nmt.wordlinks import AlignError

    target = functools.partial(checkpoint_target, path, args, "cpu", test, k)
    targets = {"int8": functools.partial(target, quantize="int8")}
    ckpt = resolve_checkpoint(path)
    listed = run_folder(ckpt) / "shortlist.npz"
    if not listed.is_file():  # one per run in the scratch folder (eflomal: not timed)
        name = hashlib.sha1(str(ckpt.resolve()).encode()).hexdigest()[:12]
        listed = Path(args.work) / f"shortlist-{name}.npz"
    log = logging.getLogger("nmt.bench")
    try:
        if not listed.is_file():
            shortlist_for_run(ckpt, log).save(listed)
        targets["shortlist"] = functools.partial(target, shortlist=listed)
        targets["int8_shortlist"] = functools.partial(target, quantize="int8", shortlist=listed)
    except AlignError as err:  # eflomal not installed: the other targets still run
        log.warning("no shortlist target: %s", err)
    if isinstance(to_dataclass(load_checkpoint(ckpt)["config"]).model, TransformerConfig):
        from nmt.ct2 import export_ctranslate2

        def exported(folder: Path, **kw) -> functools.partial:
            return functools.partial(
                checkpoint_target, str(folder), args, "cpu", test, k, engine="ctranslate2", **kw
            )

        folder = export_ctranslate2(ckpt, Path(args.work) / "ctranslate2", force=True)
        targets["ct2"] = exported(folder)
        targets["ct2_int8"] = exported(folder, quantize="int8")
        if "shortlist" in targets:  # the same list as CTranslate2's vocabulary map
            folder = Path(args.work) / "ctranslate2-shortlist"
            export_ctranslate2(ckpt, folder, force=True, shortlist=listed)
            targets["ct2_shortlist"] = exported(folder, shortlist=listed)
            targets["ct2_int8_shortlist"] = exported(folder, quantize="int8", shortlist=listed)
    return targets


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
    """bench.json's decoding fields: speed, hypothesis length and BLEU, greedy and beam 5;
    with `--decode-deploy` also for int8 and CTranslate2 (`deploy_targets`)."""
    target = decode_target(args, trainer, name)
    sources = target.sources
    out: dict[str, Any] = {"decode_sents": len(sources), "decode_model": target.origin}
    if not sources:
        return out
    greedy = _time_target(target, trainer.device, "", out)
    out["src_len_mean"] = round(sum(len(s) for s in sources) / len(sources), 2)
    ckpts = dict(item.split("=", 1) for item in args.decode_ckpt)
    if getattr(args, "decode_deploy", False) and name in ckpts:
        test = trainer.data.test
        for label, load in deploy_targets(ckpts[name], args, test, len(sources)).items():
            hyps = _time_target(load(), "cpu", f"{label}_", out)  # loaded now, freed after
            same = sum(a.tokens == b.tokens for a, b in zip(greedy, hyps)) / len(greedy)
            out[f"{label}_greedy_same_lines"] = round(same, 4)  # share equal to nmt's greedy
    return out


def _time_target(target: DecodeTarget, device: Any, prefix: str, out: dict) -> list:
    """Greedy and beam-5 decoding of the target's sources, timed, into `out` (keys with
    `prefix`): seconds, sentences/s, output tokens/s, mean length, BLEU. Returns the greedy
    hypotheses."""
    from nmt.metrics import corpus_scores

    sources = target.sources
    target.translate(sources[: min(8, len(sources))], 1)  # one-time initialisation, not timed
    greedy: list = []
    for label, beam in (("greedy", 1), ("beam5", 5)):
        sync(device)
        tick = time.perf_counter()
        hyps = target.translate(sources, beam)
        sync(device)
        seconds = time.perf_counter() - tick
        key = prefix + label
        tokens = sum(len(h.tokens) for h in hyps)
        out[f"{key}_s"] = round(seconds, 3)
        out[f"{key}_sents_per_s"] = round(len(sources) / seconds, 2)
        out[f"{key}_tokens_per_s"] = round(tokens / seconds, 1)  # output pieces, EOS excluded
        out[f"{key}_hyp_len_mean"] = round(tokens / len(hyps), 2)
        text = target.tokenizer.decode_tgt([h.tokens for h in hyps])
        out[f"{key}_bleu"] = round(corpus_scores(text, target.references)["bleu"], 2)
        greedy = hyps if beam == 1 else greedy
    return greedy
