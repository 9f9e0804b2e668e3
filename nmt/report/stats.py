"""Uncertainty in the leaderboard, all computed by sacreBLEU (`sacrebleu.significance`).

- Every finished run with a test.hyp and readable references gets test BLEU and chrF with a
  95% confidence interval from bootstrap resampling of its test sentences (Koehn, 2004), the
  numbers `sacrebleu REF -i HYP -m bleu chrf --confidence` prints: the bootstrap mean ± half
  the width of the 2.5-97.5 percentile range (cut to [0, 100]).
- Per test set, every configuration is compared with the best one (the highest test BLEU) by
  sacreBLEU's paired bootstrap test (`PairedTest(..., test_type="bs")`, `--paired-bs`).
  A configuration with several seeds is represented by one of them, the seed with the median
  test BLEU (the lower of the two middle ones for an even count): a paired test needs one
  hypothesis per test sentence, and concatenating seeds would pair configurations with
  different seed counts unevenly. Its mean ± std over all seeds stays in the table beside it.

Resampling is seeded (sacreBLEU reads `SACREBLEU_SEED`; it is set to `SEED` while it runs), so
a report is the same every time. One correction: sacreBLEU's p-value counts resampled
differences strictly above the observed one, so a system identical to the best gets
p = 1/(resamples + 1), "significant"; an observed difference of exactly 0 is reported as p = 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nmt.report.groups import Group
from nmt.report.references import NoTestData, References, read_hypotheses
from nmt.report.runs import Run

RESAMPLES = 1000  # bootstrap resamples (sacreBLEU's default for --paired-bs)
SEED = 12345  # sacreBLEU's own default seed
ALPHA = 0.05  # significance level of the marks
SEED_ENV = "SACREBLEU_SEED"


@contextlib.contextmanager
def fixed_seed(seed: int = SEED) -> Iterator[None]:
    """sacreBLEU seeds its resampling from SACREBLEU_SEED: fix it, then put it back."""
    old = os.environ.get(SEED_ENV)
    os.environ[SEED_ENV] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SEED_ENV, None)
        else:
            os.environ[SEED_ENV] = old


@dataclass(frozen=True)
class Interval:
    """A corpus score and its 95% confidence interval."""

    score: float
    low: float
    high: float


def _clip(value: float) -> float:
    """Into [0, 100], the range of BLEU and chrF: near 100 the symmetric interval overshoots."""
    return min(max(float(value), 0.0), 100.0)


def confidence_intervals(
    hyps: Sequence[str], refs: Sequence[str], resamples: int = RESAMPLES
) -> tuple[Interval, Interval]:
    """(BLEU, chrF) of `hyps`, each with sacreBLEU's bootstrap 95% confidence interval."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    metrics = {"BLEU": BLEU(), "chrF": CHRF()}
    with fixed_seed():
        _, table = PairedTest([("run", list(hyps))], metrics, [list(refs)], "bs", resamples)()
    bleu, chrf = (table[name][0] for name in list(table)[1:])  # after the "System" column
    bleu_ci, chrf_ci = (
        Interval(float(r.score), _clip(r.mean - r.ci), _clip(r.mean + r.ci)) for r in (bleu, chrf)
    )
    return bleu_ci, chrf_ci


def p_values_vs_best(
    best: Sequence[str],
    others: Sequence[Sequence[str]],
    refs: Sequence[str],
    resamples: int = RESAMPLES,
) -> list[float]:
    """The p-value of sacreBLEU's paired bootstrap test (BLEU) of each of `others` against
    `best`; an observed difference of 0 gives 1 (see the module docstring)."""
    if not others:
        return []
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    systems = [("best", list(best))] + [(f"system {i}", list(h)) for i, h in enumerate(others)]
    with fixed_seed():
        _, table = PairedTest(systems, {"BLEU": BLEU()}, [list(refs)], "bs", resamples)()
    base, *rest = table["BLEU"]
    return [1.0 if r.score == base.score else float(r.p_value) for r in rest]


@dataclass
class RunScores:
    """sacreBLEU on one run's test.hyp, or why there is nothing to score."""

    bleu: Interval | None = None
    chrf: Interval | None = None
    test_set: str = ""  # key into References.sets
    reason: str = ""
    hyps: list[str] = field(default_factory=list, repr=False)


@dataclass
class GroupTest:
    """A configuration in the significance test: the seed it is represented by, its scores and
    its p-value against the best configuration on the same test set."""

    run: Run | None = None
    scores: RunScores = field(default_factory=RunScores)
    p_value: float | None = None
    best: bool = False

    @property
    def worse(self) -> bool | None:
        """Significantly worse than the best at ALPHA; None when not tested."""
        return None if self.p_value is None else (not self.best and self.p_value < ALPHA)


@dataclass
class Significance:
    """Everything the tables show about uncertainty; `groups` follows the leaderboard order."""

    resamples: int = RESAMPLES
    runs: dict[Path, RunScores] = field(default_factory=dict)
    groups: list[GroupTest] = field(default_factory=list)
    test_sets: dict[str, str] = field(default_factory=dict)  # key -> data name


def score_run(run: Run, references: References, resamples: int) -> RunScores:
    """BLEU and chrF with confidence intervals of one run; never raises."""
    try:
        hyps = read_hypotheses(run.path)
        key = references.of(run)
    except NoTestData as err:
        return RunScores(reason=str(err))
    refs = references.sets[key].references
    if len(hyps) != len(refs) or not refs:
        return RunScores(reason=f"test.hyp has {len(hyps)} lines, the test split {len(refs)}")
    try:
        bleu, chrf = confidence_intervals(hyps, refs, resamples)
    except Exception as err:  # a sacreBLEU failure must not take the report down
        return RunScores(reason=f"sacreBLEU failed ({type(err).__name__}: {err})")
    return RunScores(bleu, chrf, key, "", hyps)


def _bleu(scores: RunScores) -> float:
    return scores.bleu.score if scores.bleu is not None else float("-inf")


def representative(group: Group, runs: dict[Path, RunScores]) -> GroupTest:
    """The seed with the median test BLEU among the group's scored runs (lower middle for an
    even count; ties keep the leaderboard's seed order)."""
    scored = [r for r in group.runs if runs[r.path].bleu is not None]
    if not scored:
        return GroupTest(scores=runs[group.first.path])
    scored.sort(key=lambda r: _bleu(runs[r.path]))
    run = scored[(len(scored) - 1) // 2]
    return GroupTest(run, runs[run.path])


def compare_with_best(tests: list[GroupTest], refs: Sequence[str], resamples: int) -> None:
    """Mark the best of `tests` (one test set) and give every other one its p-value."""
    best = max(tests, key=lambda t: _bleu(t.scores))
    best.best, best.p_value = True, 1.0
    others = [t for t in tests if t is not best]
    hyps = [t.scores.hyps for t in others]
    for t, p in zip(others, p_values_vs_best(best.scores.hyps, hyps, refs, resamples)):
        t.p_value = p


def compare(groups: list[Group], resamples: int = RESAMPLES) -> Significance:
    """Confidence intervals for every run of `groups` and each configuration's test against the
    best one on its test set. `resamples` < 1 skips it all (every cell stays empty)."""
    sig = Significance(resamples)
    if resamples < 1:
        sig.groups = [GroupTest(scores=RunScores(reason="skipped")) for _ in groups]
        return sig
    references = References()
    for run in (r for g in groups for r in g.runs):
        sig.runs[run.path] = score_run(run, references, resamples)
    sig.groups = [representative(g, sig.runs) for g in groups]
    for key, test_set in references.sets.items():
        tests = [t for t in sig.groups if t.scores.bleu is not None and t.scores.test_set == key]
        if tests:
            sig.test_sets[key] = test_set.name
            compare_with_best(tests, test_set.references, resamples)
    return sig
