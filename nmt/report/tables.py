"""The report's CSV files and the cell formatting the Markdown tables share.

- leaderboard.csv: one row per configuration of finished runs (mean and std over seeds, the
  95% confidence intervals and the paired test against the best of `nmt.report.stats`), then
  one row per unfinished run with its status;
- runs.csv: every run folder, one row each, with its own confidence intervals.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nmt.files import atomic_write_text
from nmt.report.groups import Group, settings_of
from nmt.report.runs import Run
from nmt.report.stats import GroupTest, RunScores, Significance

# (metrics.json key, Markdown header, CSV column, decimals)
METRICS: list[tuple[str, str, str, int]] = [
    ("params", "params", "params", 0),
    ("dev_bleu", "dev BLEU", "dev_bleu", 2),
    ("test_bleu", "test BLEU", "test_bleu", 2),
    ("test_chrf", "test chrF", "test_chrf", 2),
    ("aer", "AER", "aer", 3),
    ("train_tgt_tokens_per_s", "train tok/s", "train_tokens_per_s", 0),
    ("test_decode_sents_per_s", "decode sent/s", "decode_sents_per_s", 1),
    ("wall_s", "wall s", "wall_s", 0),
    ("steps", "steps", "steps", 0),
]
CI_COLUMNS = ["bleu_ci_low", "bleu_ci_high", "chrf_ci_low", "chrf_ci_high"]
TEST_COLUMNS = ["p_vs_best", "worse_than_best", "is_best", "stats_seed"]


# --- cells -----------------------------------------------------------------------------------
def fmt(value: float | None, decimals: int) -> str:
    """A number for Markdown: thousands separators for integers, "–" for none."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if decimals == 0 else f"{value:.{decimals}f}"


def fmt_stat(mean: float | None, std: float | None, decimals: int) -> str:
    text = fmt(mean, decimals)
    return text if std is None else f"{text} ± {fmt(std, decimals)}"


def cell(text: Any) -> str:
    """Text that cannot break a Markdown table row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def rel(path: Path, base: Path) -> str:
    """`path` relative to the report folder (absolute if on another drive)."""
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def _blank(value: Any) -> Any:
    return "" if value is None else value


def ci_values(scores: RunScores | None) -> list[Any]:
    """The CI_COLUMNS of a run ("" where it has none)."""
    out: list[Any] = []
    for interval in (scores.bleu, scores.chrf) if scores else (None, None):
        pair = (interval.low, interval.high) if interval is not None else (None, None)
        out += [_blank(None if v is None else round(v, 4)) for v in pair]
    return out


def significance_values(test: GroupTest | None) -> list[Any]:
    """The TEST_COLUMNS of a configuration ("" where it was not tested)."""
    if test is None or test.p_value is None or test.run is None:
        return ["", "", "", ""]
    worse, best = str(bool(test.worse)).lower(), str(test.best).lower()
    return [round(test.p_value, 4), worse, best, test.run.seed]


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> Path:
    """Write a CSV file atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


# --- leaderboard.csv -------------------------------------------------------------------------
def leaderboard_header() -> list[str]:
    header = ["rank", "mechanism", "model", "settings", "status", "runs", "seeds"]
    for _, _, col, _ in METRICS:
        header += [col, f"{col}_std"]
    return header + CI_COLUMNS + TEST_COLUMNS + ["run_dirs"]


def group_row(rank: int, g: Group, out: Path, test: GroupTest | None = None) -> list[Any]:
    """A configuration: mean and std of every metric over its seeds."""
    status = "done" + (f" ({g.unfinished} more unfinished)" if g.unfinished else "")
    row = [rank, g.first.mechanism, g.first.arch, g.settings, status, len(g.runs)]
    row.append(" ".join(str(r.seed) for r in g.runs))
    for key, _, _, _ in METRICS:
        mean, std = g.stats(key)
        row += [_blank(None if mean is None else round(mean, 4))]
        row += [_blank(None if std is None else round(std, 4))]
    row += ci_values(test.scores if test else None) + significance_values(test)
    return row + [";".join(rel(r.path, out) for r in g.runs)]


def unfinished_row(r: Run, common: set[str], out: Path) -> list[Any]:
    """A failed, interrupted or incomplete run: its status and the values it reached."""
    row = ["", r.mechanism, r.arch, settings_of(r, common), f"{r.status}: {r.detail}", 1, r.seed]
    for key, _, _, _ in METRICS:
        row += [_blank(r.value(key)), ""]
    return row + ci_values(None) + significance_values(None) + [rel(r.path, out)]


def write_leaderboard_csv(
    groups: list[Group],
    unfinished: list[Run],
    common: set[str],
    out: Path,
    sig: Significance | None = None,
) -> Path:
    tests: list[GroupTest | None] = list(sig.groups) if sig else [None] * len(groups)
    rows = [group_row(i, g, out, t) for i, (g, t) in enumerate(zip(groups, tests), 1)]
    rows += [unfinished_row(r, common, out) for r in unfinished]
    return write_csv(out / "leaderboard.csv", leaderboard_header(), rows)


# --- runs.csv --------------------------------------------------------------------------------
def write_runs_csv(
    runs: list[Run], common: set[str], out: Path, sig: Significance | None = None
) -> Path:
    header = ["run_dir", "status", "detail", "mechanism", "model", "seed", "settings"]
    header += [c for _, _, c, _ in METRICS] + CI_COLUMNS
    scores = sig.runs if sig else {}
    rows = [
        [rel(r.path, out), r.status, r.detail, r.mechanism, r.arch, r.seed]
        + [settings_of(r, common)]
        + [_blank(r.value(k)) for k, _, _, _ in METRICS]
        + ci_values(scores.get(r.path))
        for r in runs
    ]
    return write_csv(out / "runs.csv", header, rows)
