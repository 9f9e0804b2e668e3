"""report.html: the sweep report as one interactive page (`nmt.explore.page`).

- the leaderboard of leaderboard.md (one row per configuration, sortable by any column, test
  BLEU and chrF with their 95% intervals, `*` where significantly worse than the best, AER
  where measured), each row linking to its configuration's details further down;
- the figures as interactive SVG charts: test BLEU by source length, dev BLEU against training
  time, the attention statistics of the test decode (`nmt.analysis`);
- the sentence explorer (`nmt.explore.data`) over the test split, with every configuration's
  test.hyp (the seed with the best dev BLEU, as in the attention grid), re-read through its
  checkpoints/best.pt for the attention; or, with `gold`, over a gold-aligned test set (e.g.
  RWTH de-en) that every system translates here, with the gold-link view and AER;
- details per configuration: its run folders, metrics, dev curve and config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nmt.report.figures import dev_bleu_curves, mean_bleu_by_length
from nmt.report.groups import Group
from nmt.report.runs import Run
from nmt.report.stats import GroupTest, Significance
from nmt.report.tables import METRICS, rel

REPORT_FILE = "report.html"
ATTENTION_STATS = [  # (metrics.json attention_stats key, label)
    ("entropy_norm", "entropy / log S"),
    ("eos_mass", "weight on </s>"),
    ("monotonic_steps", "monotonic steps"),
    ("spearman", "Spearman (position)"),
    ("zeros", "share of exact zeros"),
]
DETAIL_METRICS = [
    "steps", "epochs", "train_time_s", "train_tgt_tokens_per_s", "dev_bleu", "best_step",
    "test_bleu", "test_chrf", "test_beam", "test_decode_sents_per_s", "aer", "aer_method",
    "stop_reason", "precision", "cpu_capability", "threads", "device", "wall_s",
]  # fmt: skip


def anchor(k: int) -> str:
    return f"run-{k + 1}"


# --- leaderboard -----------------------------------------------------------------------------
def leaderboard_columns(groups: list[Group]) -> list[dict[str, Any]]:
    """Column specs for the page's table: key, label, decimals (None: text), interval keys."""
    cols: list[dict[str, Any]] = [
        {"key": "rank", "label": "#", "decimals": 0},
        {"key": "system", "label": "system", "decimals": None},
        {"key": "model", "label": "model", "decimals": None},
    ]
    if any(g.settings for g in groups):
        cols.append({"key": "settings", "label": "settings", "decimals": None})
    for key, label, _, decimals in METRICS:
        if key == "aer" and all(g.stats("aer")[0] is None for g in groups):
            continue
        col: dict[str, Any] = {"key": key, "label": label, "decimals": decimals}
        if key == "test_bleu":
            col |= {"ci": ["bleu_lo", "bleu_hi"], "mark": True}
        elif key == "test_chrf":
            col["ci"] = ["chrf_lo", "chrf_hi"]
        cols.append(col)
        if key == "test_bleu":
            cols.append(
                {
                    "key": "p",
                    "label": "p vs best",
                    "decimals": 3,
                    "help": "sacreBLEU paired bootstrap against the best",
                }
            )
    cols.append({"key": "seeds", "label": "seeds", "decimals": None})
    return cols


def leaderboard_row(k: int, g: Group, test: GroupTest | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rank": k + 1,
        "system": g.label,
        "model": g.first.arch,
        "settings": g.settings,
        "details": anchor(k),
        "seeds": " ".join(str(r.seed) for r in g.runs),
    }
    for key, _, _, _ in METRICS:
        row[key] = g.stats(key)[0]
    if test is not None:
        if test.scores.bleu is not None:
            row |= {"bleu_lo": test.scores.bleu.low, "bleu_hi": test.scores.bleu.high}
        if test.scores.chrf is not None:
            row |= {"chrf_lo": test.scores.chrf.low, "chrf_hi": test.scores.chrf.high}
        row |= {"p": test.p_value, "worse": bool(test.worse), "best": test.best}
    return row


def leaderboard_data(groups: list[Group], sig: Significance | None) -> dict[str, Any]:
    tests: list[GroupTest | None] = list(sig.groups) if sig else [None] * len(groups)
    notes = ["Intervals: 95% bootstrap (sacreBLEU). * : significantly worse than the best "
             "(paired bootstrap, p < 0.05). Click a header to sort; a system to see its run."]  # fmt: skip
    return {
        "columns": leaderboard_columns(groups),
        "rows": [leaderboard_row(k, g, t) for k, (g, t) in enumerate(zip(groups, tests))],
        "notes": notes if sig and sig.resamples > 0 else [],
    }


# --- charts ----------------------------------------------------------------------------------
def bleu_by_length_chart(groups: list[Group]) -> dict[str, Any] | None:
    tables = {g.label: mean_bleu_by_length(g) for g in groups}
    buckets = max((order for order, _ in tables.values()), key=len, default=[])
    if not buckets:
        return None
    series = []
    for label, (_, table) in tables.items():
        by_bucket = {row["bucket"]: row["bleu"] for row in table}
        points = [[i, by_bucket.get(b)] for i, b in enumerate(buckets) if b in by_bucket]
        if points:
            series.append({"name": label, "points": points})
    return {
        "id": "bleu_by_length",
        "title": "Test BLEU by source length",
        "kind": "line",
        "categories": buckets,
        "xlabel": "source words",
        "ylabel": "BLEU",
        "series": series,
    }


def dev_curve_chart(runs: list[Run], groups: list[Group], chart_id: str) -> dict[str, Any] | None:
    curves = dev_bleu_curves(runs, groups)
    if not curves:
        return None
    return {
        "id": chart_id,
        "title": "Dev BLEU against training time",
        "kind": "line",
        "xlabel": "training seconds",
        "ylabel": "dev BLEU",
        "series": [
            {
                "name": c.label,
                "points": [[x, y] for x, y in zip(c.seconds, c.bleu)],
                "dashed": not c.finished,
            }
            for c in curves
        ],
    }


def attention_stats_chart(groups: list[Group]) -> dict[str, Any] | None:
    series = []
    for g in groups:
        points = []
        for i, (key, _) in enumerate(ATTENTION_STATS):
            values = [
                float(v)
                for r in g.runs
                if isinstance(v := ((r.metrics or {}).get("attention_stats") or {}).get(key), float)
            ]
            if values:
                points.append([i, sum(values) / len(values)])
        if points:
            series.append({"name": g.label, "points": points})
    if not series:
        return None
    return {
        "id": "attention_stats",
        "title": "Attention on the test decode (nmt.analysis)",
        "kind": "bar",
        "categories": [label for _, label in ATTENTION_STATS],
        "xlabel": "statistic",
        "ylabel": "value",
        "series": series,
    }


# --- details ---------------------------------------------------------------------------------
def details_data(groups: list[Group], out: Path) -> list[dict[str, Any]]:
    details = []
    for k, g in enumerate(groups):
        best = g.best_run()
        config_file = best.path / ".hydra" / "config.yaml"
        config = config_file.read_text(encoding="utf-8") if config_file.is_file() else ""
        metrics = {m: (best.metrics or {})[m] for m in DETAIL_METRICS if m in (best.metrics or {})}
        chart = dev_curve_chart(g.runs, [g], f"dev_{anchor(k)}")
        details.append(
            {
                "id": anchor(k),
                "title": f"{k + 1}. {g.label}",
                "links": [
                    {"href": rel(r.path, out), "text": f"run folder (seed {r.seed})"}
                    for r in g.runs
                ],  # fmt: skip
                "metrics": {"run shown": rel(best.path, out), **metrics},
                "chart": chart,
                "config": config,
            }
        )
    return details


# --- page --------------------------------------------------------------------------------------
def report_page(
    runs: list[Run],
    groups: list[Group],
    sig: Significance | None,
    out: Path,
    title: str,
    explorer: dict[str, Any] | None,
    notes: list[str],
) -> dict[str, Any]:
    charts = [
        c
        for c in (
            bleu_by_length_chart(groups),
            dev_curve_chart(runs, groups, "dev_bleu_vs_time"),
            attention_stats_chart(groups),
        )
        if c is not None
    ]
    return {
        "title": title,
        "subtitle": " ".join(notes),
        "leaderboard": leaderboard_data(groups, sig),
        "charts": charts,
        "explorer": explorer,
        "details": details_data(groups, out),
    }


def page_summary(data: dict[str, Any]) -> str:
    """One line on what the page holds (for the command's output)."""
    x = data.get("explorer") or {}
    return (
        f"{len(data['leaderboard']['rows'])} systems, {len(data['charts'])} charts, "
        f"{len(x.get('sources') or [])} explorer sentences"
    )
