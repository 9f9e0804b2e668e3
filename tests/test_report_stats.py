"""nmt-report's statistics: sacreBLEU bootstrap confidence intervals, the paired bootstrap test
against the best configuration, and how both reach leaderboard.md/.csv and runs.csv."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest
import yaml
from test_report import fake_run, metrics_for

from nmt.data.synthetic import SYNTHETIC_SEED, make_task
from nmt.metrics import corpus_scores
from nmt.report import main, make_report
from nmt.report.references import NoTestData, References, data_config
from nmt.report.runs import load_run
from nmt.report.stats import RESAMPLES, confidence_intervals, p_values_vs_best

WORDS = [f"w{i}" for i in range(60)]


def references(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(6, 14))) for _ in range(n)]


def corrupt(lines: list[str], rate: float, seed: int = 1) -> list[str]:
    """Replace each word with probability `rate` (a worse system, reproducibly)."""
    rng = random.Random(seed)
    return [" ".join("zz" if rng.random() < rate else w for w in s.split()) for s in lines]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --- sacreBLEU's test and intervals ------------------------------------------------------------
def test_paired_bootstrap_marks_a_clearly_worse_system_and_not_an_identical_one(tmp_path):
    refs = references(120)
    best = write_lines(tmp_path / "best.hyp", refs)
    bad = write_lines(tmp_path / "bad.hyp", corrupt(refs, 0.5))
    near = corrupt(refs[:1], 1.0) + refs[1:]  # one sentence of 120 differs
    best_lines, bad_lines = best.read_text().splitlines(), bad.read_text().splitlines()
    p_same, p_bad, p_near = p_values_vs_best(best_lines, [list(refs), bad_lines, near], refs)
    assert p_same == 1.0  # identical to the best: no evidence of a difference
    assert p_bad == pytest.approx(1 / (RESAMPLES + 1))  # never as large in 1000 resamples
    assert p_near > 0.05
    # what the correction is for: sacreBLEU itself calls an identical system significant
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    _, raw = PairedTest([("a", refs), ("b", list(refs))], {"BLEU": BLEU()}, [refs], "bs", 1000)()
    assert raw["BLEU"][1].p_value < 0.05


def test_confidence_intervals_contain_the_score_and_narrow_with_more_sentences(monkeypatch):
    monkeypatch.setenv("SACREBLEU_SEED", "none")  # the report fixes the seed regardless
    widths = []
    for n in (30, 600):
        refs = references(n)
        hyps = corrupt(refs, 0.3)
        bleu, chrf = confidence_intervals(hyps, refs)
        for interval in (bleu, chrf):
            assert interval.low < interval.score < interval.high
        assert (bleu, chrf) == confidence_intervals(hyps, refs)  # seeded: the same twice
        widths.append(bleu.high - bleu.low)
    assert widths[1] < widths[0] / 2
    assert os.environ["SACREBLEU_SEED"] == "none"  # put back


# --- references --------------------------------------------------------------------------------
def test_synthetic_references_are_regenerated_without_writing_the_data_folder(tmp_path):
    root = tmp_path / "gen"
    data = {"name": "reverse", "source": "synthetic", "root": str(root), "task_size": 500}
    run = stats_run(tmp_path / "run", data=data)
    refs = References()
    key = refs.of(load_run(run))
    seed = SYNTHETIC_SEED * 1000 + 2  # the test split's seed in write_task
    assert refs.sets[key].references == make_task("reverse", 50, 20, 3, 12, seed)[1]
    assert not root.exists()


def test_relative_data_root_is_found_above_the_run_and_interpolations_resolve(
    tmp_path, monkeypatch
):
    write_lines(tmp_path / "corpus" / "test.tgt", ["a"])
    run = stats_run(tmp_path / "multirun" / "0", data={"source": "local", "root": "corpus"})
    monkeypatch.chdir(tmp_path / "multirun")
    assert data_config(load_run(run)).root == str(tmp_path / "corpus")
    monkeypatch.setenv("TOY_ROOT", str(tmp_path / "elsewhere"))
    run = stats_run(tmp_path / "r2", data={"source": "local", "root": "${oc.env:TOY_ROOT}"})
    assert data_config(load_run(run)).root == str(tmp_path / "elsewhere")
    with pytest.raises(NoTestData, match="no references"):
        References().of(load_run(run))


# --- the report --------------------------------------------------------------------------------
def stats_run(
    path: Path,
    attention: str = "bahdanau",
    arch: str = "rnn",
    seed: int = 1,
    data: dict | None = None,
    hyps: list[str] | None = None,
    dev: float = 10.0,
    refs: list[str] | None = None,
) -> Path:
    """A finished run on `data` (default: local files) with `hyps` as its test.hyp, scored
    against `refs` in metrics.json as training would."""
    scores = corpus_scores(hyps, refs) if hyps and refs else {"bleu": 0.0, "chrf": 0.0}
    metrics = metrics_for(dev, scores["bleu"], test_chrf=scores["chrf"])
    fake_run(path, attention, arch, seed, metrics=metrics)
    config_file = path / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["data"] = {"name": "toy", "src_lang": "src", "tgt_lang": "tgt", **(data or {})}
    config_file.write_text(yaml.safe_dump(config))
    if hyps is not None:
        write_lines(path / "test.hyp", hyps)
    return path


@pytest.fixture
def scored_sweep(tmp_path) -> tuple[Path, Path]:
    """transformer (perfect), luong_dot (one sentence off), bahdanau x3 (corrupted), and runs
    without test.hyp, without references and unfinished."""
    refs = references(80)
    data_dir = tmp_path / "data"
    write_lines(data_dir / "test.src", refs)
    write_lines(data_dir / "test.tgt", refs)
    local = {"source": "local", "root": str(data_dir)}
    root = tmp_path / "multirun"
    near = corrupt(refs[:1], 1.0) + refs[1:]
    stats_run(root / "t", arch="transformer", data=local, hyps=refs, dev=30.0, refs=refs)
    stats_run(root / "d", "luong_dot", data=local, hyps=near, dev=20.0, refs=refs)
    for seed, rate in ((1, 0.6), (2, 0.2), (3, 0.4)):  # median BLEU: seed 3
        hyps = corrupt(refs, rate, seed)
        stats_run(root / f"b{seed}", seed=seed, data=local, hyps=hyps, refs=refs)
    stats_run(root / "g", "luong_general", data=local, dev=5.0)  # no test.hyp
    missing = {"source": "local", "root": str(tmp_path / "gone")}
    stats_run(root / "p", "local_p", data=missing, hyps=refs, dev=4.0)
    fake_run(root / "u", "luong_concat", valid=[{"step": 1, "train_time": 1.0, "bleu": 1.0}])
    return root, tmp_path / "report"


def read_csv(path: Path, key: str = "mechanism") -> dict[str, dict]:
    """The rows of a CSV file by the value of one column."""
    with open(path, newline="") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def test_report_marks_significance_and_intervals(scored_sweep):
    root, out = scored_sweep
    result = make_report([root], out, heatmaps=False)
    rows = read_csv(out / "leaderboard.csv")
    t, d, b = rows["transformer"], rows["luong_dot"], rows["bahdanau"]
    assert (t["is_best"], t["worse_than_best"], t["p_vs_best"]) == ("true", "false", "1.0")
    assert float(t["bleu_ci_low"]) == float(t["bleu_ci_high"]) == pytest.approx(100.0)
    assert (d["worse_than_best"], d["is_best"]) == ("false", "false")
    assert float(d["p_vs_best"]) > 0.05
    assert b["worse_than_best"] == "true" and float(b["p_vs_best"]) < 0.05
    assert b["stats_seed"] == "3" and b["seeds"] == "1 2 3"
    # the intervals are those of seed 3 and hold its score (metrics.json: sacreBLEU on test.hyp)
    seed3 = load_run(root / "b3").metrics
    assert float(b["bleu_ci_low"]) < seed3["test_bleu"] < float(b["bleu_ci_high"])
    assert float(b["chrf_ci_low"]) < seed3["test_chrf"] < float(b["chrf_ci_high"])
    assert float(d["bleu_ci_low"]) < float(d["test_bleu"]) < float(d["bleu_ci_high"]) == 100.0
    for name in ("luong_general", "local_p", "luong_concat"):  # in the table, cells empty
        assert rows[name]["bleu_ci_low"] == rows[name]["p_vs_best"] == ""
    assert rows["luong_concat"]["status"].startswith("incomplete")
    runs = read_csv(out / "runs.csv", "run_dir")
    assert all(runs[os.path.relpath(root / f"b{s}", out)]["bleu_ci_low"] for s in (1, 2, 3))

    md = result["text"]
    assert (
        "At p < 0.05 (paired bootstrap, 1000 resamples, sacreBLEU), bahdanau is significantly "
        "worse than transformer in test BLEU; luong_dot is not distinguishable from it." in md
    )
    assert "Not tested: luong_general (no test.hyp); local_p (no references (DataError:" in md
    bahdanau_row = next(line for line in md.splitlines() if line.startswith("| 3 | bahdanau"))
    cells = [c.strip() for c in bahdanau_row.split("|")[1:-1]]
    assert cells[7].endswith(" *") and cells[8].endswith("(seed 3)")
    assert "| best |" in next(line for line in md.splitlines() if "| transformer |" in line)
    assert "| – | – |" in next(line for line in md.splitlines() if "luong_general |" in line)


def test_report_cli_skips_statistics_with_zero_resamples(scored_sweep, capsys):
    root, out = scored_sweep
    assert main([str(root), "-o", str(out), "--no-heatmaps", "--resamples", "0"]) == 0
    assert "significance tests skipped (--resamples 0)" in capsys.readouterr().out
    assert read_csv(out / "leaderboard.csv")["transformer"]["p_vs_best"] == ""
    with pytest.raises(SystemExit):
        main([str(root), "--resamples", "-1"])


def test_mismatched_test_hyp_is_listed_not_scored(tmp_path):
    refs = references(10)
    write_lines(tmp_path / "data" / "test.src", refs)
    write_lines(tmp_path / "data" / "test.tgt", refs)
    local = {"source": "local", "root": str(tmp_path / "data")}
    stats_run(tmp_path / "m" / "a", data=local, hyps=refs[:7])
    result = make_report([tmp_path / "m"], tmp_path / "out", heatmaps=False)
    assert "bahdanau (test.hyp has 7 lines, the test split 10)" in result["text"]


def test_each_test_set_is_compared_with_its_own_best(tmp_path):
    sets = {}
    for name, n in (("toy1", 60), ("toy2", 40)):
        refs = references(n, seed=n)
        write_lines(tmp_path / name / "test.src", refs)
        write_lines(tmp_path / name / "test.tgt", refs)
        sets[name] = ({"name": name, "source": "local", "root": str(tmp_path / name)}, refs)
    (one, refs1), (two, refs2) = sets["toy1"], sets["toy2"]
    root = tmp_path / "m"
    stats_run(root / "a", arch="transformer", data=one, hyps=refs1, dev=30.0, refs=refs1)
    stats_run(root / "b", data=one, hyps=corrupt(refs1, 0.5), dev=20.0, refs=refs1)
    stats_run(root / "c", "luong_dot", data=two, hyps=corrupt(refs2, 0.5), refs=refs2)
    result = make_report([root], tmp_path / "out", heatmaps=False)
    head = "test set, at p < 0.05 (paired bootstrap, 1000 resamples, sacreBLEU), "
    assert (
        f"On the toy1 {head}bahdanau is significantly worse than transformer in test BLEU."
    ) in result["text"]
    assert f"On the toy2 {head}only luong_dot could be tested" in result["text"]
    rows = read_csv(tmp_path / "out" / "leaderboard.csv")
    assert [rows[m]["is_best"] for m in ("transformer", "bahdanau", "luong_dot")] == [
        "true",
        "false",
        "true",
    ]
