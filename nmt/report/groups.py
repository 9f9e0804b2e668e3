"""Grouping finished runs by configuration: runs that differ only in `seed` are one row.

What sets a configuration apart in the tables is its command-line overrides minus those that
every run shares, the seed, and what the mechanism and model columns already say.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from nmt.report.runs import Run

HIDDEN_OVERRIDES = ("seed", "resume", "sweep", "variant")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def settings_of(run: Run, common: set[str]) -> str:
    """The command-line overrides that set this run apart (not seed, not what other columns say)."""
    out = []
    for o in run.overrides:
        key = _override_key(o)
        value = o.split("=", 1)[1] if "=" in o else ""
        if o in common or key in HIDDEN_OVERRIDES:
            continue
        if (key == "attention" and value == run.mechanism) or (
            key == "model" and value == run.arch
        ):
            continue
        out.append(o)
    return " ".join(out)


@dataclass
class Group:
    """Finished runs of one configuration (different seeds)."""

    runs: list[Run]
    settings: str
    unfinished: int = 0

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def label(self) -> str:
        return self.first.mechanism + (f" [{self.settings}]" if self.settings else "")

    def stats(self, name: str) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation over the seeds (None where undefined)."""
        values = [
            v for v in (r.value(name) for r in self.runs) if v is not None and math.isfinite(v)
        ]
        if not values:
            return None, None
        mean = statistics.fmean(values)
        return mean, (statistics.stdev(values) if len(values) > 1 else None)

    def best_run(self) -> Run:
        return max(self.runs, key=lambda r: r.value("dev_bleu") or -1.0)


def common_overrides(runs: list[Run]) -> set[str]:
    """The overrides every run shares."""
    common = set(runs[0].overrides) if runs else set()
    for r in runs[1:]:
        common &= set(r.overrides)
    return common


def group_runs(runs: list[Run]) -> tuple[list[Group], list[Run], set[str]]:
    """Finished runs grouped by configuration (sorted by mean dev BLEU), unfinished runs, and the
    overrides every run shares."""
    common = common_overrides(runs)
    groups: dict[str, Group] = {}
    for r in runs:
        if r.status == "done":
            if r.key not in groups:
                groups[r.key] = Group([], settings_of(r, common))
            groups[r.key].runs.append(r)
    unfinished = [r for r in runs if r.status != "done"]
    for r in unfinished:
        if r.key in groups:
            groups[r.key].unfinished += 1
    ordered = sorted(groups.values(), key=lambda g: -(g.stats("dev_bleu")[0] or -1.0))
    return ordered, unfinished, common
