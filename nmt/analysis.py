"""Attention statistics per model, and the BLEU-by-length table of a test decode.

Statistics (`attention_stats`) are computed on attention matrices of shape (T, S) whose last
column is the source end-of-sentence token `</s>` (the layout of `Hypothesis.attention` and of
`nmt-translate --attention-out`); each row is one target token's distribution over the source.
For the Transformer the matrix is first reduced to one layer (default: the last) and the average
of its heads, i.e. the same matrix the heatmaps show.

- `entropy`: mean over all target tokens of H(a_t) = -sum_s a_ts log a_ts (nats);
  `entropy_norm` divides each H(a_t) by log S (S = source length with `</s>`), so 0 means all
  weight on one token and 1 means uniform, comparable across lengths (rows with S = 1 skipped).
- `eos_mass`: mean over target tokens of the weight on `</s>` (the last column).
- `positions_read`: mean over target tokens of the number of source positions (with `</s>`) with
  a nonzero weight; `zeros` the mean share of exact zeros per row (sparsity: 0 for softmax,
  which never gives an exact zero inside its support; the window's complement for local
  attention; more for sparsemax / 1.5-entmax, which read fewer positions).
- Monotonicity of the argmax alignment j_t = argmax over the source tokens except `</s>`:
  `monotonic_steps` = fraction of consecutive target steps with j_{t+1} >= j_t (pooled over the
  corpus; 1.0 for a perfectly monotone, diagonal alignment), and `spearman` = the mean over
  sentences of Spearman's rank correlation between t and j_t (ties get average ranks; sentences
  with fewer than 2 tokens or a constant j_t are skipped): +1 for a diagonal, -1 for an
  anti-diagonal (e.g. the synthetic reversal task), near 0 for no order.

`analyse_test_run` adds these statistics to a finished test decode and has `nmt.viz` draw
`bleu_by_length.png` in the run folder; `python -m nmt.analysis` does the same from files.
This module computes; every figure is drawn by `nmt.viz`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmt.rundir import read_metrics, update_metrics


def _as_matrix(att: Any, layer: int = -1, head: int | None = None) -> np.ndarray:
    """A (T, S) float64 array from a (T, S) or (T, L, heads, S) tensor/array/list."""
    if hasattr(att, "detach"):
        from nmt.models import reduce_attention

        att = reduce_attention(att.detach().float().cpu(), layer, head).numpy()
    a = np.asarray(att, dtype=np.float64)
    if a.ndim == 4:
        a = a[:, layer].mean(axis=1) if head is None else a[:, layer, head]
    if a.ndim != 2:
        raise ValueError(f"attention must be (T, S) or (T, L, heads, S), got shape {a.shape}")
    return a


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tie = x == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson on average ranks); None if either side is constant
    or there are fewer than 2 points."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum()))


def attention_stats(
    matrices: Iterable[Any], layer: int = -1, head: int | None = None
) -> dict[str, float | int | None]:
    """Entropy, `</s>` mass and argmax monotonicity of attention matrices (see the module doc).

    Each matrix is (T, S) with `</s>` as its last column (or (T, L, heads, S), reduced with
    `layer`/`head`); empty matrices are skipped. Values are None when nothing was measurable."""
    ent, ent_norm, eos, read, zeros = [], [], [], [], []
    steps = up = 0
    rhos = []
    sentences = 0
    for att in matrices:
        if att is None:
            continue
        a = _as_matrix(att, layer, head)
        T, S = a.shape
        if T == 0 or S == 0:
            continue
        sentences += 1
        p = np.clip(a, 0.0, None)
        h = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)  # (T,)
        ent.extend(h.tolist())
        if S > 1:
            ent_norm.extend((h / math.log(S)).tolist())
        eos.extend(a[:, -1].tolist())
        nonzero = (a > 0).sum(axis=1)  # (T,) positions a row reads
        read.extend(nonzero.tolist())
        zeros.extend((1.0 - nonzero / S).tolist())
        if S > 1:
            j = a[:, :-1].argmax(axis=1)
            if T > 1:
                steps += T - 1
                up += int((np.diff(j) >= 0).sum())
                rho = spearman(np.arange(T), j)
                if rho is not None:
                    rhos.append(rho)

    def mean(xs: list[float]) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    return {
        "sentences": sentences,
        "tokens": len(ent),
        "entropy": mean(ent),
        "entropy_norm": mean(ent_norm),
        "eos_mass": mean(eos),
        "positions_read": mean(read),  # source positions (incl. </s>) read per step
        "zeros": mean(zeros),
        "monotonic_steps": round(up / steps, 4) if steps else None,
        "spearman": mean(rhos),
        "spearman_sentences": len(rhos),
    }


# --- a run's test decode ----------------------------------------------------------------------
def run_label(metrics: Mapping[str, Any], fallback: str = "") -> str:
    """The legend label of a run, e.g. `rnn bahdanau`, from its metrics (or the fallback)."""
    parts = [str(metrics[k]) for k in ("model", "attention") if metrics.get(k)]
    return " ".join(parts) or fallback


def analyse_test_run(
    run_dir: str | Path,
    hyps: Sequence[Any],
    tokenizer: Any = None,
    test_split: Any = None,
    bleu_by_length: Sequence[Mapping[str, Any]] | None = None,
    label: str = "",
    edges: Sequence[int] = (10, 20, 30, 40),
    layer: int = -1,
    head: int | None = None,
    write_metrics: bool = False,
) -> dict[str, Any]:
    """Attention statistics of a test decode and the BLEU-by-length plot of a run.

    `hyps` are the `nmt.decoding.Hypothesis` objects of the test decode (decoded with
    attention); the statistics are taken on their attention (beam-search output, not forced
    decoding of the reference). `bleu_by_length` is the table `Trainer.test()` computes; when
    None it is computed here from the hypotheses (`tokenizer.decode_tgt`) and `test_split`
    (`src_text`, `tgt_text`) with bucket `edges`. Writes `run_dir/bleu_by_length.png` (a
    plotting failure is logged, not raised) and returns
    `{"attention_stats": ..., "bleu_by_length": ...}` for metrics.json; with
    `write_metrics=True` also merges that into an existing `run_dir/metrics.json`."""
    run_dir = Path(run_dir)
    stats = attention_stats((getattr(h, "attention", None) for h in hyps), layer, head)
    if bleu_by_length is None:
        if tokenizer is None or test_split is None:
            raise ValueError("need bleu_by_length, or tokenizer and test_split to compute it")
        from nmt.metrics import bleu_by_length as compute

        text = tokenizer.decode_tgt([h.tokens for h in hyps])
        bleu_by_length = compute(text, test_split.tgt_text, test_split.src_text, edges)
    result = {"attention_stats": stats, "bleu_by_length": list(bleu_by_length)}
    try:
        from nmt.viz import plot_bleu_by_length

        plot_bleu_by_length({label or run_dir.name: bleu_by_length}, run_dir / "bleu_by_length.png")
    except (OSError, RuntimeError, ValueError) as err:  # a failed plot must not lose the metrics
        logging.getLogger("nmt").warning("bleu_by_length.png not written: %s", err)
    if write_metrics:
        update_metrics(run_dir, result)
    return result


def read_attention_jsonl(path: str | Path) -> list[np.ndarray]:
    """The attention matrices of an `nmt-translate --attention-out` file (empty lines skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                att = json.loads(line).get("attention") or []
                out.append(np.asarray(att, dtype=np.float64).reshape(len(att), -1))
    return out


def bleu_length_tables(
    runs: Sequence[str | Path], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """{legend label: bleu_by_length table} of run folders or metrics.json files; a repeated
    label gets a prime (') so that no run is dropped."""
    tables: dict[str, Any] = {}
    for k, run in enumerate(runs):
        m = read_metrics(run)
        if "bleu_by_length" not in m:
            raise ValueError(f"{run}: metrics have no bleu_by_length table")
        name = labels[k] if labels and k < len(labels) else run_label(m, Path(run).name)
        while name in tables:
            name += "'"
        tables[name] = m["bleu_by_length"]
    return tables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nmt.analysis",
        description="BLEU-by-length plots from metrics.json files and attention statistics "
        "from --attention-out files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_len = sub.add_parser("bleu-length", help="one line per run from metrics.json bleu_by_length")
    p_len.add_argument("runs", nargs="+", help="run folders or metrics.json files")
    p_len.add_argument("-o", "--output", default="bleu_by_length.png")
    p_len.add_argument(
        "--labels", nargs="*", help="one legend label per run (default: model and attention)"
    )
    p_stats = sub.add_parser(
        "stats", help="attention statistics of nmt-translate --attention-out files"
    )
    p_stats.add_argument("files", nargs="+")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "bleu-length":
            from nmt.viz import plot_bleu_by_length

            print(plot_bleu_by_length(bleu_length_tables(args.runs, args.labels), args.output))
        else:
            for f in args.files:
                print(json.dumps({"file": f, **attention_stats(read_attention_jsonl(f))}))
    except (OSError, ValueError) as err:
        print(f"nmt.analysis: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
