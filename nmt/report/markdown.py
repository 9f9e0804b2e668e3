"""leaderboard.md: a summary, the leaderboard, the unfinished runs and the figures."""

from __future__ import annotations

from pathlib import Path

from nmt.report.groups import Group, settings_of
from nmt.report.runs import STATUSES, Run
from nmt.report.stats import ALPHA, SEED, GroupTest, Interval, Significance
from nmt.report.tables import METRICS, cell, fmt, fmt_stat, rel

LEADERBOARD_NOTE = (
    "Finished runs, sorted by dev BLEU; one row per configuration, mean ± std over seeds when it "
    "ran with several. Test BLEU/chrF: sacreBLEU, beam search with the best dev checkpoint."
)
STATS_NOTE = (
    "95% CI: sacreBLEU bootstrap resampling of the run's test.hyp ({n} resamples, seed {seed}). "
    "p vs best: sacreBLEU's paired bootstrap test of test BLEU against the configuration with "
    "the highest test BLEU on the same test set; `*` after test BLEU = significantly worse at "
    "p < {alpha:g}. With several seeds, the intervals and the test use the seed with the median "
    "test BLEU (the lower middle one for an even count; named in the CI cell), while mean ± std "
    "are over all seeds."
)
STAT_HEADERS = {"test_bleu": ["BLEU 95% CI", "p vs best"], "test_chrf": ["chrF 95% CI"]}
UNFINISHED_HEADER = [
    "| mechanism | model | settings | seed | status | detail | steps | dev BLEU | folder |",
    "|---|---|---|---:|---|---|---:|---:|---|",
]


def budget_lines(runs: list[Run]) -> list[str]:
    """The distinct per-run budgets (trainer stop conditions, device, threads)."""
    seen: dict[str, int] = {}
    for r in runs:
        t = r.config.get("trainer") or {}
        parts = [
            f"{k}={t.get(k)}"
            for k in ("max_time", "max_steps", "max_epochs", "patience")
            if t.get(k) is not None
        ]
        parts.append(f"device={t.get('device', 'auto')}")
        if t.get("threads"):
            parts.append(f"threads={t.get('threads')}")
        data = (r.config.get("data") or {}).get("name", "?")
        line = f"data={data}; trainer: " + ", ".join(parts)
        seen[line] = seen.get(line, 0) + 1
    return [f"{line} ({n} run{'s' if n != 1 else ''})" for line, n in seen.items()]


def summary(runs: list[Run], common: set[str], title: str) -> list[str]:
    """Title, run counts by status, shared overrides and the budgets."""
    counts = {s: sum(r.status == s for r in runs) for s in STATUSES}
    line = (
        f"{len(runs)} run folders: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (f". Shared overrides: `{' '.join(sorted(common))}`" if common else "")
        + "."
    )
    return [f"# {title}", "", line, "", "Budget per run:", ""] + [
        f"- {b}" for b in budget_lines(runs)
    ]


def interval_cell(interval: Interval | None, seed_note: str = "") -> str:
    return "–" if interval is None else f"[{interval.low:.2f}, {interval.high:.2f}]{seed_note}"


def metric_cells(g: Group, key: str, decimals: int, test: GroupTest | None) -> list[str]:
    """The cell of one metric: mean ± std over seeds, then the statistics cells that follow
    test BLEU (CI, p vs best; `*` on the BLEU cell when significantly worse) and test chrF."""
    mean, std = g.stats(key)
    text = fmt_stat(mean, None if key == "params" else std, decimals)
    if key not in STAT_HEADERS:
        return [text]
    scores = test.scores if test is not None else None
    if key == "test_chrf":
        return [text, interval_cell(scores.chrf if scores else None)]
    tested_run = test.run if test is not None else None
    seed_note = f" (seed {tested_run.seed})" if tested_run and len(g.runs) > 1 else ""
    if test is not None and test.worse:
        text += " *"
    p_cell = "–" if test is None or test.p_value is None else f"{test.p_value:.3f}"
    p_cell = "best" if test is not None and test.best else p_cell
    return [text, interval_cell(scores.bleu if scores else None, seed_note), p_cell]


def leaderboard(groups: list[Group], sig: Significance | None = None) -> list[str]:
    """One row per configuration, mean ± std over seeds (params: mean only), with confidence
    intervals and the test against the best, and a sentence on what is significant."""
    headers = [h for key, h, _, _ in METRICS for h in [h, *STAT_HEADERS.get(key, [])]]
    cols = ["#", "mechanism", "model", "settings", "runs"] + headers
    align = ["---:" if c in headers + ["#", "runs"] else "---" for c in cols]
    note = STATS_NOTE.format(n=sig.resamples, seed=SEED, alpha=ALPHA) if sig else ""
    md = ["## Leaderboard", "", LEADERBOARD_NOTE + (" " + note if note else ""), ""]
    md += ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    tests = sig.groups if sig else [None] * len(groups)
    for i, (g, test) in enumerate(zip(groups, tests), 1):
        runs_cell = str(len(g.runs)) + (f" (+{g.unfinished} unfinished)" if g.unfinished else "")
        cells = [str(i), g.first.mechanism, g.first.arch, cell(g.settings or "–"), runs_cell]
        for key, _, _, dec in METRICS:
            cells += metric_cells(g, key, dec, test)
        md.append("| " + " | ".join(cells) + " |")
    if not groups:
        md.append("| " + " | ".join(["–"] * len(cols)) + " |")
    return md + ([""] + significance_lines(groups, sig) if sig else [])


def _names(labels: list[str]) -> str:
    """Labels joined as in a sentence: a / a and b / a, b and c."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _verb(labels: list[str]) -> str:
    return "is" if len(labels) == 1 else "are"


def significance_sentence(tested: list[tuple[Group, GroupTest]], head: str) -> str:
    """One test set: which configurations are significantly worse than the best."""
    best = next(g.label for g, t in tested if t.best)
    worse = [g.label for g, t in tested if t.worse]
    same = [g.label for g, t in tested if not t.best and not t.worse]
    if not worse and not same:
        return f"{head}only {best} could be tested: there is nothing to compare it with."
    if not worse:
        return f"{head}no configuration is significantly worse than {best} in test BLEU."
    text = f"{head}{_names(worse)} {_verb(worse)} significantly worse than {best} in test BLEU"
    if same:
        text += f"; {_names(same)} {_verb(same)} not distinguishable from it"
    return text + "."


def significance_lines(groups: list[Group], sig: Significance) -> list[str]:
    """The sentence(s) under the leaderboard: per test set, what is significant; then which
    configurations could not be tested, and why."""
    if sig.resamples < 1:
        return ["Confidence intervals and significance tests skipped (--resamples 0)."]
    pairs = list(zip(groups, sig.groups))
    method = f"paired bootstrap, {sig.resamples} resamples, sacreBLEU"
    lines = []
    for key, name in sig.test_sets.items():
        tested = [(g, t) for g, t in pairs if t.p_value is not None and t.scores.test_set == key]
        where = f"On the {name} test set, at" if len(sig.test_sets) > 1 else "At"
        lines.append(significance_sentence(tested, f"{where} p < {ALPHA:g} ({method}), "))
    untested = [f"{g.label} ({t.scores.reason})" for g, t in pairs if t.p_value is None]
    if untested and not lines:
        lines.append(
            "No configuration has a test.hyp with readable references: no confidence "
            "intervals or significance tests."
        )
    if untested:
        lines.append("Not tested: " + "; ".join(untested) + ".")
    return lines


def unfinished_table(unfinished: list[Run], common: set[str], out: Path) -> list[str]:
    """Failed, interrupted and incomplete runs with their reason and what they reached."""
    md = ["## Unfinished runs", ""]
    if not unfinished:
        return md + ["None: every run finished."]
    md += ["Failed, interrupted or still incomplete; values are those reached so far.", ""]
    md += UNFINISHED_HEADER
    for r in unfinished:
        cells = [
            r.mechanism,
            r.arch,
            cell(settings_of(r, common) or "–"),
            str(r.seed),
            f"**{r.status}**",
            cell(r.detail),
            fmt(r.value("steps"), 0),
            fmt(r.value("dev_bleu"), 2),
            cell(rel(r.path, out)),
        ]
        md.append("| " + " | ".join(cells) + " |")
    return md


def tables_markdown(
    runs: list[Run],
    groups: list[Group],
    unfinished: list[Run],
    common: set[str],
    out: Path,
    title: str,
    sig: Significance | None = None,
) -> str:
    """The tables part of leaderboard.md."""
    md = summary(runs, common, title) + [""] + leaderboard(groups, sig) + [""]
    md += unfinished_table(unfinished, common, out)
    return "\n".join(md) + "\n"


def figures_markdown(figures: dict[str, list[Path]], notes: list[str], out: Path) -> list[str]:
    """The figures section: one sub-heading and image per figure, then notes on skipped ones."""
    md = ["## Figures", ""]
    for name, paths in figures.items():
        for path in paths:
            md += [f"### {name}", "", f"![{name}]({rel(path, out)})", ""]
    return md + [f"- {note}" for note in notes]
