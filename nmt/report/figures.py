"""The report's figures: the data behind them, drawn by `nmt.viz`.

- BLEU by source length: one line per configuration, the mean over its seeds per bucket;
- dev BLEU against training time: one line per run (colour: configuration; dashed: unfinished);
- attention grid: per data set, one row per configuration (its seed with the best dev BLEU),
  one column per test sentence, re-decoded from the run's best checkpoint with the Translator,
  so the text goes through the same normalisation the model was trained with.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from nmt import viz
from nmt.report.groups import Group
from nmt.report.runs import Run

MAX_GRID_TOKENS = 40  # target rows drawn per heatmap in the attention grid


# --- BLEU by length --------------------------------------------------------------------------
def mean_bleu_by_length(group: Group) -> tuple[list[str], list[dict[str, Any]]]:
    """The buckets of a configuration's runs (in order) and its mean BLEU per bucket."""
    per_bucket: dict[str, list[float]] = {}
    order: list[str] = []
    for r in group.runs:
        for b in (r.metrics or {}).get("bleu_by_length") or []:
            label = str(b.get("bucket"))
            if label not in order:
                order.append(label)
            if b.get("bleu") is not None:
                per_bucket.setdefault(label, []).append(float(b["bleu"]))
    table = [
        {"bucket": b, "bleu": statistics.fmean(per_bucket[b]) if per_bucket.get(b) else None}
        for b in order
    ]
    return order, table


def plot_bleu_by_length(groups: list[Group], path: Path) -> Path | None:
    """Test BLEU per source-length bucket, one line per configuration; None without data."""
    tables: dict[str, list[dict[str, Any]]] = {}
    buckets: list[str] = []
    for g in groups:
        order, table = mean_bleu_by_length(g)
        if order:
            tables[g.label] = table
            buckets = order if len(order) > len(buckets) else buckets
    if not tables:
        return None
    title = "BLEU by sentence length"
    return viz.plot_bleu_by_length(tables, path, title, "test BLEU", buckets)


# --- dev BLEU against time -------------------------------------------------------------------
def dev_bleu_curves(runs: list[Run], groups: list[Group]) -> list[viz.Curve]:
    """One curve per run with validations; finished runs are labelled by configuration."""
    labels = {r.path: g.label for g in groups for r in g.runs}
    return [
        viz.Curve(
            labels.get(r.path, f"{r.mechanism} ({r.status})"),
            [float(v.get("train_time", 0.0)) for v in r.valid],
            [float(v.get("bleu", 0.0)) for v in r.valid],
            finished=r.status == "done",
        )
        for r in runs
        if r.valid
    ]


def plot_dev_bleu_vs_time(runs: list[Run], groups: list[Group], path: Path) -> Path | None:
    """Dev BLEU against training time; None when no run has validated yet."""
    curves = dev_bleu_curves(runs, groups)
    return viz.plot_dev_bleu_vs_time(curves, path) if curves else None


# --- attention grid --------------------------------------------------------------------------
def first_test_sources(data_cfg: Any, n: int = 3) -> list[str]:
    """The first `n` non-empty source lines of the test split a run was evaluated on."""
    from nmt.data.corpus import SYNTHETIC_PREFIXES, find_split_file, load_corpus, read_lines

    prefix = SYNTHETIC_PREFIXES["test"] if data_cfg.source == "synthetic" else data_cfg.test_prefix
    found = find_split_file(data_cfg.root, prefix, data_cfg.src_lang) if data_cfg.root else None
    if found is not None and data_cfg.source != "hub":
        lines = read_lines(found, max_lines=max(50, 10 * n))
    elif data_cfg.source == "synthetic":  # regenerate the (deterministic) task in a scratch folder
        import dataclasses
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            lines = load_corpus(dataclasses.replace(data_cfg, root=tmp))["test"][0]
    else:
        lines = load_corpus(data_cfg)["test"][0]
    return [line for line in lines if line.strip()][:n]


def grid_cell(translator: Any, line: str, hyp: Any) -> viz.GridCell:
    """(source tokens, target tokens, (T, S) weights) of one translation, or why there is none.

    A degenerate (looping) output is cut to its first MAX_GRID_TOKENS rows plus a blank one."""
    if hyp is None or hyp.attention is None or not hyp.tokens:
        return "empty translation"
    record = translator.attention_record(0, line, hyp)
    src, tgt = record["source_tokens"], record["target_tokens"]
    weights = np.asarray(record["attention"], dtype=np.float64)  # (T, S)
    if len(tgt) > MAX_GRID_TOKENS:
        tgt = tgt[:MAX_GRID_TOKENS] + ["…"]
        weights = np.vstack([weights[:MAX_GRID_TOKENS], np.full_like(weights[:1], np.nan)])
    return src, tgt, weights


def attention_cells(
    run: Run, sentences: list[str] | None, n: int, device: str
) -> tuple[list[str], list[viz.GridCell]]:
    """The sentences (the run's first `n` test sources unless given) and one cell for each."""
    import torch

    from nmt.checkpoint import resolve_checkpoint
    from nmt.translate import Translator

    translator = Translator(resolve_checkpoint(run.path), device=device)
    if sentences is None:
        sentences = first_test_sources(translator.cfg.data, n)
    with torch.no_grad():
        _, hyps = translator.translate(sentences, need_attention=True)
    return sentences, [grid_cell(translator, line, h) for line, h in zip(sentences, hyps)]


def grid_rows(gs: list[Group], n: int, device: str) -> list[tuple[str, list[viz.GridCell]]]:
    """One row per configuration; all rows show the sentences of the first one that decodes.
    A run that cannot be decoded gets its error in each cell, its folder named without the path."""
    sentences: list[str] | None = None
    rows = []
    for g in gs:
        run = g.best_run()
        try:
            sentences, cells = attention_cells(run, sentences, n, device)
        except Exception as err:  # a missing/incompatible checkpoint: say so in the figure
            reason = str(err).replace(str(run.path), run.path.name)  # the reason, not the path
            cells = [f"{type(err).__name__}: {reason}"[:120]] * n
        rows.append((g.label, cells))
    return rows


def plot_attention_grid(
    groups: list[Group], out_dir: Path, n: int = 3, device: str = "cpu"
) -> list[Path]:
    """One grid per data set: rows = configurations, columns = the first `n` test sentences."""
    by_data: dict[str, list[Group]] = {}
    for g in groups:
        data_key = json.dumps(g.first.config.get("data"), sort_keys=True, default=str)
        by_data.setdefault(data_key, []).append(g)
    paths = []
    for k, gs in enumerate(by_data.values()):
        data_name = (gs[0].first.config.get("data") or {}).get("name", "data")
        name = (
            f"attention_grid_{k + 1}_{data_name}.png" if len(by_data) > 1 else "attention_grid.png"
        )
        path = out_dir / name
        viz.plot_attention_grid(grid_rows(gs, n, device), n, path)
        paths.append(path)
    return paths
