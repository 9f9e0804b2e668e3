"""nmt-report on hand-made run folders: seed aggregation, unfinished runs, tables and figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from nmt import viz
from nmt.report import finished_metrics, load_run, main, make_report, record_failure
from nmt.report.figures import attention_cells, dev_bleu_curves, mean_bleu_by_length
from nmt.report.groups import group_runs
from nmt.report.runs import load_runs


def fake_run(
    path: Path,
    attention: str = "bahdanau",
    arch: str = "rnn",
    seed: int = 1,
    metrics: dict | None = None,
    valid: list[dict] | None = None,
    overrides: list[str] | None = None,
    **extra_model,
) -> Path:
    """A run folder as nmt-train leaves it (config, overrides, metrics.json, valid.jsonl)."""
    (path / ".hydra").mkdir(parents=True)
    config = {
        "data": {"name": "reverse", "source": "synthetic"},
        "model": {"arch": arch, "dec_hidden": 64, **extra_model},
        "attention": {"type": attention},
        "trainer": {"max_steps": 30, "max_time": None, "device": "cpu", "threads": 2},
        "seed": seed,
        "resume": None,
    }
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    default = (
        [f"attention={attention}", f"seed={seed}"]
        if arch == "rnn"
        else ["model=transformer", f"seed={seed}"]
    )
    (path / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(overrides if overrides is not None else default)
    )
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    if valid:
        (path / "valid.jsonl").write_text("".join(json.dumps(v) + "\n" for v in valid))
    return path


def metrics_for(dev: float, test: float, **extra) -> dict:
    return {
        "model": "rnn",
        "params": 1000,
        "steps": 30,
        "dev_bleu": dev,
        "test_bleu": test,
        "test_chrf": 50.0,
        "train_tgt_tokens_per_s": 900.0,
        "test_decode_sents_per_s": 40.0,
        "wall_s": 12.0,
        "interrupted": False,
        "stop_reason": "trainer.max_steps=30",
        "bleu_by_length": [
            {"bucket": "1-10", "sentences": 5, "bleu": test + 1},
            {"bucket": "11-20", "sentences": 3, "bleu": test - 1},
            {"bucket": "21+", "sentences": 0, "bleu": None},
        ],
        **extra,
    }


VALID = [{"step": 15, "train_time": 1.0, "bleu": 5.0}, {"step": 30, "train_time": 2.0, "bleu": 9.0}]


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Two multiruns side by side: bahdanau x 2 seeds, luong_dot, transformer, and 3 unfinished runs."""
    root = tmp_path / "multirun"
    a, b = root / "2024-01-01" / "10-00-00", root / "sweep-cpu"
    fake_run(
        a / "0_attention=bahdanau,seed=1",
        seed=1,
        metrics=metrics_for(10.0, 9.0, aer=0.4),
        valid=VALID,
    )
    fake_run(
        a / "1_attention=bahdanau,seed=2",
        seed=2,
        metrics=metrics_for(12.0, 11.0, aer=0.5),
        valid=VALID,
    )
    fake_run(
        a / "2_attention=luong_dot,seed=1",
        "luong_dot",
        metrics=metrics_for(20.0, 19.0),
        valid=VALID,
    )
    fake_run(
        b / "model=transformer,seed=1",
        arch="transformer",
        metrics=metrics_for(30.0, 28.0, model="transformer"),
        valid=VALID,
    )
    # unfinished: failed (error.txt), interrupted (metrics.json says so), incomplete (nothing yet)
    failed = fake_run(a / "3_attention=local_p,seed=1", "local_p")
    record_failure(failed, RuntimeError("CUDA out of memory"))
    fake_run(
        a / "4_attention=bahdanau,seed=3",
        seed=3,
        metrics={**metrics_for(7.0, 0.0), "interrupted": True, "stop_reason": "signal SIGTERM"},
        valid=VALID[:1],
    )
    fake_run(b / "attention=luong_general,seed=1", "luong_general", valid=VALID[:1])
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def decoded_size(path: Path) -> tuple[int, int]:
    """(width, height) of the fully decoded PNG."""
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    return width, height


def test_leaderboard_aggregates_seeds_and_lists_unfinished(sweep, tmp_path):
    out = tmp_path / "report"
    result = make_report([sweep], out, heatmaps=False)
    assert len(result["runs"]) == 7
    rows = read_csv(out / "leaderboard.csv")
    done = [r for r in rows if r["status"].startswith("done")]
    # sorted by dev BLEU: transformer, luong_dot, bahdanau (2 seeds)
    assert [r["mechanism"] for r in done] == ["transformer", "luong_dot", "bahdanau"]
    bahdanau = done[2]
    assert bahdanau["runs"] == "2" and bahdanau["seeds"] == "1 2"
    assert float(bahdanau["dev_bleu"]) == pytest.approx(11.0)
    # sample standard deviation of 10 and 12
    assert float(bahdanau["dev_bleu_std"]) == pytest.approx(1.4142, abs=1e-3)
    assert float(bahdanau["aer"]) == pytest.approx(0.45)
    assert bahdanau["status"] == "done (1 more unfinished)"  # the interrupted seed 3
    assert done[0]["aer"] == "" and done[0]["dev_bleu_std"] == ""
    for col in (
        "mechanism",
        "model",
        "params",
        "dev_bleu",
        "test_bleu",
        "test_chrf",
        "aer",
        "train_tokens_per_s",
        "decode_sents_per_s",
        "wall_s",
        "steps",
    ):
        assert col in rows[0]
    # every unfinished run is a row with its status
    statuses = sorted(r["status"].split(":")[0] for r in rows if not r["status"].startswith("done"))
    assert statuses == ["failed", "incomplete", "interrupted"]
    failed = next(r for r in rows if r["status"].startswith("failed"))
    assert "CUDA out of memory" in failed["status"] and failed["mechanism"] == "local_p"
    incomplete = next(r for r in rows if r["status"].startswith("incomplete"))
    assert incomplete["dev_bleu"] == "5.0" and incomplete["steps"] == "15.0"

    md = (out / "leaderboard.md").read_text()
    assert (
        "| 3 | bahdanau | rnn | – | 2 (+1 unfinished) | 1,000 | 11.00 ± 1.41 | 10.00 ± 1.41 |" in md
    )
    assert "| 1 | transformer | transformer |" in md
    assert "**failed**" in md and "**interrupted**" in md and "**incomplete**" in md
    assert "signal SIGTERM" in md and "RuntimeError: CUDA out of memory" in md
    assert "data=reverse; trainer: max_steps=30, device=cpu, threads=2 (7 runs)" in md
    assert len(read_csv(out / "runs.csv")) == 7
    # figures (no heatmaps asked for)
    assert (out / "figures" / "bleu_by_length.png").stat().st_size > 0
    assert (out / "figures" / "dev_bleu_vs_time.png").stat().st_size > 0
    assert "figures/bleu_by_length.png" in md and "attention grid skipped" in md


def test_report_figures_are_drawn_at_their_size(sweep, tmp_path):
    out = tmp_path / "report"
    result = make_report([sweep], out, heatmaps=False)
    # 120 dpi; BLEU by length: 1.1 inch a bucket + 2 wide (3 buckets), 3.8 high
    assert decoded_size(out / "figures" / "bleu_by_length.png") == (636, 456)
    assert decoded_size(out / "figures" / "dev_bleu_vs_time.png") == (900, 540)
    assert result["figures"] == [
        out / "figures" / n for n in ("bleu_by_length.png", "dev_bleu_vs_time.png")
    ]


def test_settings_column_names_what_differs(tmp_path):
    root = tmp_path / "m"
    for i, (att, hid) in enumerate(
        [("luong_general", 256), ("luong_general", 512), ("local_p", 256)]
    ):
        for seed in (1, 2):
            fake_run(
                root / f"{i}_{seed}",
                att,
                seed=seed,
                metrics=metrics_for(10.0 + i, 9.0),
                overrides=[
                    f"attention={att}",
                    f"model.dec_hidden={hid}",
                    f"seed={seed}",
                    "data=reverse",
                ],
                dec_hidden=hid,
            )
    make_report([root], tmp_path / "out", heatmaps=False)
    rows = read_csv(tmp_path / "out" / "leaderboard.csv")
    assert [(r["mechanism"], r["settings"], r["runs"]) for r in rows] == [
        ("local_p", "model.dec_hidden=256", "2"),
        ("luong_general", "model.dec_hidden=512", "2"),
        ("luong_general", "model.dec_hidden=256", "2"),
    ]


def test_missing_checkpoint_does_not_break_the_attention_grid(sweep, tmp_path, monkeypatch):
    drawn = []

    def spy(rows, n, path):
        drawn.append(fig := plot_grid(rows, n, path))
        return fig

    plot_grid = viz.plot_attention_grid
    monkeypatch.setattr(viz, "plot_attention_grid", spy)
    result = make_report([sweep], tmp_path / "out", heatmaps=True)
    grid = tmp_path / "out" / "figures" / "attention_grid.png"
    assert grid in result["figures"] and grid.stat().st_size > 0
    # one grid (one data set): a row per configuration in leaderboard order, 3 sentences each,
    # every cell saying why there is no heatmap
    (fig,) = drawn
    axes = np.array(fig.axes).reshape(3, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["transformer", "luong_dot", "bahdanau"]
    assert [ax.get_title() for ax in axes[0]] == [f"test sentence {i}" for i in (1, 2, 3)]
    for ax in axes.flat:
        (text,) = ax.texts
        assert text.get_text().startswith("CheckpointError:") and not ax.images
        assert "checkpoints/best.pt" in text.get_text()
    width, height = fig.get_size_inches()
    assert decoded_size(grid) == (round(100 * width), round(100 * height))


def test_figure_data_means_over_seeds_and_curves_per_run(sweep):
    runs = load_runs([sweep])
    groups, _, _ = group_runs(runs)
    assert [g.label for g in groups] == ["transformer", "luong_dot", "bahdanau"]
    buckets, table = mean_bleu_by_length(groups[2])  # bahdanau: test BLEU 9 and 11
    assert buckets == ["1-10", "11-20", "21+"]
    assert [b["bleu"] for b in table] == [11.0, 9.0, None]
    curves = dev_bleu_curves(runs, groups)
    assert len(curves) == 6  # every run with a valid.jsonl (not the failed one)
    by_label = {}
    for c in curves:
        by_label.setdefault(c.label, []).append(c)
    assert sorted(by_label) == [
        "bahdanau",
        "bahdanau (interrupted)",
        "luong_dot",
        "luong_general (incomplete)",
        "transformer",
    ]
    assert [c.finished for c in by_label["bahdanau"]] == [True, True]
    (interrupted,) = by_label["bahdanau (interrupted)"]
    assert not interrupted.finished and interrupted.seconds == [1.0] and interrupted.bleu == [5.0]


def test_dev_bleu_figure_colours_by_configuration():
    import matplotlib.pyplot as plt

    curves = [
        viz.Curve("a", [1.0, 2.0], [3.0, 4.0]),
        viz.Curve("a", [1.0, 2.0], [5.0, 6.0]),
        viz.Curve("b (incomplete)", [1.0], [2.0], finished=False),
    ]
    fig, ax = plt.subplots()
    viz.draw_dev_bleu_vs_time(ax, curves)
    assert len(ax.lines) == 3
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    assert [line.get_linestyle() for line in ax.lines] == ["-", "-", "--"]
    assert [line.get_label() for line in ax.lines][::2] == ["a", "b (incomplete)"]
    assert ax.lines[1].get_label().startswith("_")  # one legend entry per configuration
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [5.0, 6.0])
    plt.close(fig)


def test_attention_cells_use_the_models_text_normalisation(trained_run, tmp_path):
    """The grid's source labels come from Translator.prepare (data.tokenize too), so they line up
    with the attention columns."""
    from test_plotting import checkpoint_with

    from nmt.report.runs import Run
    from nmt.translate import Translator

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoint_with(trained_run, run_dir / "checkpoints" / "best.pt", lowercase=True, tokenize=True)
    run = Run(run_dir, {}, [], None, "done", "")
    sentences, cells = attention_cells(run, ["A1,A2 A3", ""], 2, "cpu")
    assert sentences == ["A1,A2 A3", ""]
    src, tgt, weights = cells[0]
    pieces = Translator(trained_run).tokenizer.src_pieces("a1 , a2 a3")
    assert src == pieces + ["</s>"]
    assert weights.shape == (len(tgt), len(src))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-3)
    assert cells[1] == "empty translation"


def test_finished_metrics_and_failure_record(tmp_path):
    assert finished_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"dev_bleu": 3.5, "interrupted": true}')
    assert finished_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"dev_bleu": 3.5, "interrupted": false}')
    assert finished_metrics(tmp_path)["dev_bleu"] == 3.5
    (tmp_path / "metrics.json").write_text('{"dev_bleu": 3.')  # cut short
    assert finished_metrics(tmp_path) is None
    run = fake_run(tmp_path / "r")
    try:
        raise ValueError("bad\nsecond line")
    except ValueError as err:
        record_failure(run, err)
    assert (run / "error.txt").read_text().startswith("ValueError: bad\n")
    loaded = load_run(run)
    assert loaded.status == "failed" and loaded.detail == "ValueError: bad"


def test_cli(sweep, tmp_path, capsys):
    assert main([str(sweep), "-o", str(tmp_path / "o"), "--no-heatmaps"]) == 0
    assert "## Leaderboard" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run folders" in capsys.readouterr().err
    assert main([str(tmp_path / "nope")]) == 2


def test_mechanism_names_a_sparse_normalizer_and_hard_attention(tmp_path):
    run = fake_run(tmp_path / "r", "luong_dot", metrics=metrics_for(1.0, 1.0))
    assert load_run(run).mechanism == "luong_dot"
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["attention"]["normalizer"] = "sparsemax"
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_run(run).mechanism == "luong_dot+sparsemax"
    config["attention"]["hard"] = "gumbel"
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_run(run).mechanism == "luong_dot+sparsemax+hard-gumbel"
    config["attention"].update(normalizer="softmax", hard="reinforce", hard_inference="soft")
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_run(run).mechanism == "luong_dot+hard-reinforce(soft)"
