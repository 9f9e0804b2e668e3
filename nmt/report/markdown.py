"""leaderboard.md: a summary, the leaderboard, the unfinished runs and the figures."""

from __future__ import annotations

from pathlib import Path

from nmt.report.groups import Group, settings_of
from nmt.report.runs import STATUSES, Run
from nmt.report.tables import METRICS, cell, fmt, fmt_stat, rel

LEADERBOARD_NOTE = (
    "Finished runs, sorted by dev BLEU; one row per configuration, mean ± std over seeds when it "
    "ran with several. Test BLEU/chrF: sacreBLEU, beam search with the best dev checkpoint."
)
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


def leaderboard(groups: list[Group]) -> list[str]:
    """One row per configuration, mean ± std over seeds (params: mean only)."""
    headers = [h for _, h, _, _ in METRICS]
    cols = ["#", "mechanism", "model", "settings", "runs"] + headers
    align = ["---:" if c in headers + ["#", "runs"] else "---" for c in cols]
    md = ["## Leaderboard", "", LEADERBOARD_NOTE, ""]
    md += ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    for i, g in enumerate(groups, 1):
        runs_cell = str(len(g.runs)) + (f" (+{g.unfinished} unfinished)" if g.unfinished else "")
        cells = [str(i), g.first.mechanism, g.first.arch, cell(g.settings or "–"), runs_cell]
        for key, _, _, dec in METRICS:
            mean, std = g.stats(key)
            cells.append(fmt_stat(mean, None if key == "params" else std, dec))
        md.append("| " + " | ".join(cells) + " |")
    if not groups:
        md.append("| " + " | ".join(["–"] * len(cols)) + " |")
    return md


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
) -> str:
    """The tables part of leaderboard.md."""
    md = summary(runs, common, title) + [""] + leaderboard(groups) + [""]
    md += unfinished_table(unfinished, common, out)
    return "\n".join(md) + "\n"


def figures_markdown(figures: dict[str, list[Path]], notes: list[str], out: Path) -> list[str]:
    """The figures section: one sub-heading and image per figure, then notes on skipped ones."""
    md = ["## Figures", ""]
    for name, paths in figures.items():
        for path in paths:
            md += [f"### {name}", "", f"![{name}]({rel(path, out)})", ""]
    return md + [f"- {note}" for note in notes]
