"""`python -m nmt.align.sweep DIR`: the AER table of an alignment sweep (conf/sweep/align.yaml).

The sweep trains every system in both directions (de→en and en→de). Here each de→en run is
paired with the en→de run of the same configuration, and both are scored against the gold
links with every extraction method of `nmt-align` (plain and shifted read-out, argmax,
threshold at 0.1, 0.2, ..., 0.5, the intersection / grow-diag / grow-diag-final of both
directions' argmax links and of their threshold links, and the argmax / threshold of both
directions' weights combined, "agreement"), for a Transformer at every decoder
layer, from the head average and from each head (a guided model trains one head: Garg et al.
2019 read that head). Head h of the de→en model is paired with head h of the en→de model: for
guided models the same trained head; for unguided ones an arbitrary pairing, which only the
two-direction methods (symmetrisations, agreement) depend on.

**Protocol** (no setting is chosen on the sentences it is reported on): the method (with its
threshold, and layer and head) with the lowest AER on gold sentences 1–100 is chosen per system;
its AER on sentences 101–508 is the system's figure (all 508 beside it, for comparison with the
literature). Each way of reading the attention (read-out, and one direction, the other, a
symmetrisation or agreement) also gets its own best extraction on 1–100 and its AER on 101–508
(`ways`), for comparing methods without choosing among them on the reported lines. eflomal is
run on the same training text plus the test sentences (grow-diag-final) and scored on the same
lines. Each row also has both runs' dev BLEU at the scored checkpoint's step (valid.jsonl) and,
for a guided system, the difference from the unguided system of the same mechanism and data
(issue 16 lets guidance cost at most 0.5 BLEU). The table goes to
DIR/alignment.md and .json; each paired run's metrics.json gets `aer` (101–508) and
`aer_method`, which `nmt-report` shows in the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from nmt.align.cli import build_parser as align_parser
from nmt.align.common import AlignError
from nmt.align.links import (
    AGREEMENT,
    COMBINES,
    SHIFT_ATT,
    method_name,
    method_threshold,
    method_way,
)
from nmt.align.run import (
    GoldCorpus,
    attention_predictions,
    eflomal_predictions,
    forced_pair,
    load_translator,
    orient,
    read_test_files,
    score_all,
)
from nmt.checkpoint import load_checkpoint
from nmt.errors import UserError
from nmt.files import atomic_write_text
from nmt.rundir import (
    finished_metrics,
    hard_attention,
    mechanism_label,
    read_jsonl,
    update_metrics,
)

SELECT, REPORT = (0, 100), (100, 508)  # 0-based [start, end) of the gold lines
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)  # the threshold method's candidates, chosen on SELECT
EFLOMAL_ROW = "eflomal (train + test text)"  # the baseline's row in the table
SOFT_READOUT = " (soft read-out)"  # a hard-attention system scored on its soft distribution
LUONG_2015 = {"luong_location": 0.39, "local_m": 0.34, "local_p": 0.36, "berkeley aligner": 0.32}
WAYS = {
    "": "de→en",
    "reverse": "en→de",
    **{w: w for w in (*COMBINES, AGREEMENT)},
}  # column titles


def _config(run: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run / ".hydra" / "config.yaml"), resolve=False)


def system_name(cfg: dict[str, Any]) -> str:
    """The run's mechanism (`nmt.rundir.mechanism_label`: `luong_general`, `transformer`,
    `local_p+sparsemax`, `bahdanau+hard-gumbel`), with ` guided λ=2` when guided (` guided λ=2 full
    context` with `trainer.guided_alignment.full_context`) and ` (test text unseen)`
    when `data.extra_train` is empty, so that runs with and without the gold sentences in
    their training text share one sweep folder, each with its row (`data=europarl_align` puts
    exactly the gold text there; any other extra files count as "seen" too)."""
    name = mechanism_label(cfg, inference=False)  # a hard system's rows name their read-out
    guided = (cfg.get("trainer") or {}).get("guided_alignment") or {}
    if guided.get("weight", 0.0):
        name = f"{name} guided λ={guided['weight']:g}"
        name += " full context" if guided.get("full_context") else ""
    if not (cfg.get("data") or {}).get("extra_train"):
        name += " (test text unseen)"
    return name


def find_pairs(root: Path, checkpoint: str | None = None) -> dict[str, tuple[Path, Path]]:
    """System name -> (de→en run, en→de run): finished runs, or with `checkpoint` the runs
    that have that file in checkpoints/ (a run still training has its step_N.pt)."""
    found: dict[str, dict[str, Path]] = {}
    for here, dirs, _ in os.walk(root):
        dirs.sort()
        run = Path(here)
        if not (run / ".hydra" / "config.yaml").is_file():
            continue
        if checkpoint is None and finished_metrics(run) is None:
            continue
        if checkpoint is not None and not (run / "checkpoints" / checkpoint).is_file():
            continue
        cfg = _config(run)
        direction = f"{cfg['data']['src_lang']}-{cfg['data']['tgt_lang']}"
        found.setdefault(system_name(cfg), {})[direction] = run
    return {
        name: (runs["de-en"], runs["en-de"])
        for name, runs in sorted(found.items())
        if {"de-en", "en-de"} <= set(runs)
    }


def _args(
    rwth: Path,
    fwd: Path,
    rev: Path,
    layer: int,
    head: int | None,
    gold_order: str,
    checkpoint: str,
    hard_inference: str | None = None,
) -> argparse.Namespace:
    return align_parser().parse_args(
        [
            str(fwd / "checkpoints" / checkpoint),
            "--src", str(rwth / "test.de"),
            "--tgt", str(rwth / "test.en"),
            "--gold", str(rwth / "alignment.talp"),
            "--gold-order", gold_order,
            "--reverse-ckpt", str(rev / "checkpoints" / checkpoint),
            "--layer", str(layer),
            "--threshold", ",".join(map(str, THRESHOLDS)),
        ]
        + (["--head", str(head)] if head is not None else [])
        + (["--hard-inference", hard_inference] if hard_inference else [])
    )  # fmt: skip


def attention_sources(model: Any) -> list[tuple[int, int | None, str]]:
    """(layer, head or None for the head average, label) of every attention the sweep reads:
    the RNN's one; each Transformer decoder layer's head average and each of its heads."""
    if getattr(model, "arch", "rnn") != "transformer":
        return [(-1, None, "")]
    return [
        (layer, head, f" (layer {layer})" if head is None else f" (layer {layer}, head {head})")
        for layer in range(model.dec_layers)
        for head in [None, *range(model.heads)]
    ]


def _score(
    predictions: dict, test: GoldCorpus, excluded: set[int], lines: tuple[int, int]
) -> dict[str, dict]:
    keep = [k for k in range(*lines) if k not in excluded and k < len(test.src)]
    return score_all(predictions, test.gold, keep)


def _line_label(lines: tuple[int, int]) -> str:
    return f"{lines[0] + 1}-{lines[1]}"


def score_system(
    rwth: Path,
    fwd: Path,
    rev: Path,
    gold_order: str = "de-en",
    checkpoint: str = "best.pt",
    hard_inference: str | None = None,
) -> dict[str, Any]:
    """Every method (and Transformer layer and head) on 1–100; the best one's scores on
    101–508 and on all. A Transformer's row also lists, under `sources`, each layer's and
    head's best method (chosen on 1–100) with its scores. `rwth` holds test.de (the source of
    `fwd`), test.en and alignment.talp; `checkpoint`: the file in both runs' checkpoints/
    folder (best.pt, last.pt, step_N.pt); `hard_inference`: a hard-attention pair's read-out
    (argmax | soft; default the checkpoints')."""
    translator = load_translator(str(fwd / "checkpoints" / checkpoint), "cpu", hard_inference)
    args = _args(rwth, fwd, rev, -1, None, gold_order, checkpoint, hard_inference)
    src, tgt, gold, _ = read_test_files(args)
    test = orient(args, src, tgt, gold, translator)
    forced = forced_pair(args, translator, test)  # both directions decoded once, read per source
    sources: dict[str, dict[str, Any]] = {}
    for layer, head, label in attention_sources(translator.cfg.model):
        args = _args(rwth, fwd, rev, layer, head, gold_order, checkpoint, hard_inference)
        predictions, excluded = attention_predictions(args, translator, test, forced=forced)
        chosen = _score(predictions, test, excluded, SELECT)
        method = min(chosen, key=lambda name: chosen[name]["aer"])
        ways = best_per_way(chosen)  # the chosen method is one of them
        report = _score({m: predictions[m] for m in ways.values()}, test, excluded, REPORT)
        sources[label.strip(" ()")] = {
            "method": method + label,
            "select": chosen[method],
            "report": report[method],
            "all": _score({method: predictions[method]}, test, excluded, (0, 508))[method],
            "ways": {
                way: {"method": m, "select_aer": chosen[m]["aer"], "aer": report[m]["aer"]}
                for way, m in ways.items()
            },
        }
    best = dict(min(sources.values(), key=lambda row: row["select"]["aer"]))
    if len(sources) > 1:
        best["sources"] = sources
    # de→en, en→de; validation decoded with the checkpoints' read-out: none for another one
    own = hard_inference is None or hard_inference == (
        (_config(fwd).get("attention") or {}).get("hard_inference") or "argmax"
    )
    best["dev_bleu"] = [dev_bleu(run, checkpoint) if own else None for run in (fwd, rev)]
    return best


def best_per_way(scores: dict[str, dict]) -> dict[str, str]:
    """Way of reading (`method_way`: read-out and how the directions combine) -> the method of
    that way with the lowest AER in `scores`, i.e. argmax or the threshold chosen on them."""
    best: dict[str, str] = {}
    for name in sorted(scores, key=lambda name: scores[name]["aer"]):
        best.setdefault(method_way(name), name)
    return best


def dev_bleu(run: Path, checkpoint: str) -> float | None:
    """The run's dev BLEU (valid.jsonl) at the step `checkpoint` was saved; None when that
    step was not validated or the checkpoint does not say its step."""
    step = (load_checkpoint(run / "checkpoints" / checkpoint, mmap=True).get("progress") or {}).get(
        "step"
    )
    return next(
        (r.get("bleu") for r in read_jsonl(run / "valid.jsonl") if r.get("step") == step), None
    )


def unguided_name(name: str) -> str:
    """The system a guided one is compared with: `transformer guided λ=2 full context (test
    text unseen)` -> `transformer (test text unseen)`."""
    return re.sub(r" guided λ=\S+( full context)?", "", name)


def score_eflomal(rwth: Path, train_src: str, train_tgt: str) -> dict[str, Any]:
    """eflomal (grow-diag-final) trained on the training text plus all test sentences."""
    args = align_parser().parse_args(
        [
            "--src", str(rwth / "test.de"),
            "--tgt", str(rwth / "test.en"),
            "--gold", str(rwth / "alignment.talp"),
            "--eflomal", "--train-src", train_src, "--train-tgt", train_tgt,
            "--gold-order", "src-tgt",
        ]
    )  # fmt: skip
    src, tgt, gold, _ = read_test_files(args)
    test = orient(args, src, tgt, gold, None)
    predictions, _ = eflomal_predictions(args, test)
    name = next(iter(predictions))
    return {
        "method": name,
        "select": _score(predictions, test, set(), SELECT)[name],
        "report": _score(predictions, test, set(), REPORT)[name],
        "all": _score(predictions, test, set(), (0, 508))[name],
    }


def _earlier_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of an earlier table (none when it is missing or unreadable)."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return rows if isinstance(rows, dict) else {}


def format_markdown(rows: dict[str, dict[str, Any]]) -> str:
    """The AER table, best first, with Luong et al.'s figures beside it."""
    head = (
        "| system | method (chosen on 1-100) | AER 101-508 | prec | recall | AER 1-508 "
        "| AER 1-100 | dev BLEU de→en / en→de | guided − unguided BLEU |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["report"]["aer"]):
        rep, base = r["report"], unguided_name(name)
        cost = _bleu_cost(r, rows.get(base)) if base != name else ""
        body += (
            f"| {name} | {r['method']} | {100 * rep['aer']:.1f} | {100 * rep['precision']:.1f} "
            f"| {100 * rep['recall']:.1f} | {100 * r['all']['aer']:.1f} "
            f"| {100 * r['select']['aer']:.1f} | {_bleu_pair(r.get('dev_bleu'))} | {cost} |\n"
        )
    luong = ", ".join(f"{k} {100 * v:.0f}" for k, v in LUONG_2015.items())
    return (
        "# Alignment error rate (RWTH de-en gold, %)\n\n"
        + head
        + body
        + f"\nLuong et al. 2015 (Table 6, 4.5M WMT pairs, all 508 sentences): {luong}.\n"
        + _ways_markdown(rows)
        + "".join(_sources_markdown(name, r) for name, r in rows.items() if "sources" in r)
    )


def _ways_markdown(rows: dict[str, dict[str, Any]]) -> str:
    """Each way of reading a system's attention (the plain and the Shift-Att read-out; one
    direction, the other, each symmetrisation, agreement), each with the extraction (argmax or
    a threshold) chosen on 1–100: its AER on 101–508."""
    rows = {name: r for name, r in rows.items() if "ways" in r}
    if not rows:
        return ""
    text = (
        "\n## Each way of reading the attention (AER 101-508)\n\n"
        "For reading only: each cell's extraction (argmax, or the threshold in brackets) is "
        "chosen on 1-100; the system's figure above is the best of them on 1-100.\n"
    )
    for readout, title in (("", "plain read-out"), (SHIFT_ATT, "Shift-Att read-out")):
        cols = [method_way(method_name("argmax", readout, combine)) for combine in WAYS]
        text += (
            f"\n### {title}\n\n| system | " + " | ".join(WAYS.values()) + " |\n"
            "|---|" + "---:|" * len(cols) + "\n"
        )
        for name, r in sorted(rows.items(), key=lambda kv: kv[1]["report"]["aer"]):
            text += f"| {name} | " + " | ".join(_way_cell(r["ways"].get(c)) for c in cols) + " |\n"
    return text


def _way_cell(way: dict[str, Any] | None) -> str:
    if way is None:
        return "–"
    threshold = method_threshold(way["method"])
    return f"{100 * way['aer']:.1f}" + (f" (≥{threshold})" if threshold else "")


def _bleu_pair(bleu: list[float | None] | None) -> str:
    if not bleu:
        return ""
    return " / ".join("–" if b is None else f"{b:.2f}" for b in bleu)


def _bleu_cost(guided: dict[str, Any], unguided: dict[str, Any] | None) -> str:
    """Each direction's dev BLEU of a guided system minus its unguided one's (issue 16: guided
    training may cost at most 0.5 BLEU); empty without both."""
    pairs = zip(guided.get("dev_bleu") or [], (unguided or {}).get("dev_bleu") or [])
    diffs = [f"{g - u:+.2f}" for g, u in pairs if g is not None and u is not None]
    return " / ".join(diffs) if len(diffs) == 2 else ""


def _sources_markdown(name: str, row: dict[str, Any]) -> str:
    """A Transformer row's layers and heads: each one's best method on 1–100 and its AER."""
    lines = "".join(
        f"| {label} | {r['method']} | {100 * r['report']['aer']:.1f} "
        f"| {100 * r['select']['aer']:.1f} |\n"
        for label, r in row["sources"].items()
    )
    return (
        f"\n## {name}: each layer and head (head average: the layer alone)\n\n"
        "For reading only: the system's figure above is the one chosen on 1-100.\n\n"
        "| attention | method (chosen on 1-100) | AER 101-508 | AER 1-100 |\n"
        "|---|---|---|---|\n" + lines
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nmt.align.sweep",
        description="AER table of an alignment sweep: methods chosen on gold lines 1-100, "
        "reported on 101-508.",
    )
    parser.add_argument("sweep_dir")
    root = os.environ.get("NMT_DATA_ROOT", "data")
    parser.add_argument("--rwth", default=f"{root}/rwth-align-de-en", help="the gold set folder")
    parser.add_argument("--train-src", default=f"{root}/wmt14-slice-de-en/train.de.gz")
    parser.add_argument("--train-tgt", default=f"{root}/wmt14-slice-de-en/train.en.gz")
    parser.add_argument(
        "--no-eflomal",
        action="store_true",
        help="do not run eflomal (an eflomal line already in this checkpoint's table is kept)",
    )
    parser.add_argument(
        "--gold-order",
        default="de-en",
        help="the language order of the gold links (nmt-align --gold-order); RWTH: de-en",
    )
    parser.add_argument(
        "--checkpoint",
        default="best.pt",
        help="which checkpoint of each run (best.pt, last.pt, step_N.pt); with another than "
        "best.pt the table goes to alignment-NAME.md/.json and metrics.json is left alone",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="score only the systems whose name contains TEXT (repeatable; a hard system's "
        "name, its soft read-out row comes with it); the other systems' rows in this "
        "checkpoint's earlier table are kept",
    )
    args = parser.parse_args(argv)
    sweep, rwth = Path(args.sweep_dir), Path(args.rwth)
    chosen = None if args.checkpoint == "best.pt" else args.checkpoint  # None: best.pt
    try:
        pairs = find_pairs(sweep, chosen)
        if not pairs:
            what = "finished runs" if chosen is None else f"both with checkpoints/{chosen}"
            raise AlignError(f"{sweep}: no de-en / en-de run pairs ({what})")
        if args.only:
            pairs = {n: p for n, p in pairs.items() if any(text in n for text in args.only)}
            if not pairs:
                raise AlignError(f"{sweep}: no system's name contains {' or '.join(args.only)}")
        rows: dict[str, dict[str, Any]] = {}
        with torch.no_grad():
            for name, (fwd, rev) in pairs.items():
                hard = hard_attention(_config(fwd)) != "none"
                rows[name] = score_system(
                    rwth, fwd, rev, args.gold_order, args.checkpoint, "argmax" if hard else None
                )
                if hard:  # also the distribution the argmax is read from
                    rows[f"{name}{SOFT_READOUT}"] = score_system(
                        rwth, fwd, rev, args.gold_order, args.checkpoint, "soft"
                    )
                for run in (fwd, rev) if chosen is None else ():
                    update_metrics(
                        run,
                        {"aer": rows[name]["report"]["aer"], "aer_method": rows[name]["method"]},
                    )
                for row in (name, f"{name}{SOFT_READOUT}"):
                    if row in rows:
                        print(f"{row}: {rows[row]['method']} AER {rows[row]['report']['aer']:.4f}")
        if not args.no_eflomal:
            rows[EFLOMAL_ROW] = score_eflomal(rwth, args.train_src, args.train_tgt)
    except (UserError, FileNotFoundError) as err:  # AlignError, CheckpointError, ConfigError
        print(f"nmt.align.sweep: error: {err}", file=sys.stderr)
        return 2
    stem = "alignment" if chosen is None else f"alignment-{Path(chosen).stem}"
    earlier = _earlier_rows(sweep / f"{stem}.json") if args.no_eflomal or args.only else {}
    if args.no_eflomal and EFLOMAL_ROW in earlier:  # rescoring must not lose an eflomal line
        rows[EFLOMAL_ROW] = earlier[EFLOMAL_ROW]
    for name, row in earlier.items() if args.only else ():  # the systems not rescored
        rows.setdefault(name, row)
    text = format_markdown(rows)
    atomic_write_text(sweep / f"{stem}.md", text)
    atomic_write_text(sweep / f"{stem}.json", json.dumps(rows, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
