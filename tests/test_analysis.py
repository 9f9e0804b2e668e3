"""Tests for nmt.analysis (attention statistics, analyse_test_run) and the BLEU-by-length plot
that nmt.viz draws for it."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nmt.analysis import (
    analyse_test_run,
    attention_stats,
    bleu_length_tables,
    main,
    read_attention_jsonl,
    spearman,
)
from nmt.viz import draw_bleu_by_length, plot_bleu_by_length

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
C0 = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib's first line colour


def decode_png(path) -> np.ndarray:
    """The decoded (height, width, RGBA) pixels of a PNG file."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path)


def bleu_plot_size(buckets: int) -> tuple[int, int]:
    """(height, width) in pixels of a BLEU-by-length PNG: 120 dpi, 1.1 inch per bucket + 2."""
    return round(120 * 3.8), round(120 * max(5.0, 1.1 * buckets + 2.0))


def has_colour(pixels: np.ndarray, rgb: np.ndarray) -> bool:
    return bool((np.abs(pixels[..., :3] - rgb).max(axis=-1) < 1.5 / 255).any())


def with_eos(core: np.ndarray, eos: float = 0.0) -> np.ndarray:
    """Append a </s> column holding `eos` and scale the rest to keep rows summing to 1."""
    return np.concatenate([core * (1 - eos), np.full((len(core), 1), eos)], axis=1)


def test_diagonal_attention_stats():
    s = attention_stats([with_eos(np.eye(4)), with_eos(np.eye(3))])
    assert s["sentences"] == 2 and s["tokens"] == 7
    assert s["entropy"] == 0.0 and s["entropy_norm"] == 0.0
    assert s["eos_mass"] == 0.0
    assert s["monotonic_steps"] == 1.0
    assert s["spearman"] == 1.0 and s["spearman_sentences"] == 2
    # one position read per row; 4 of 5 (3 of 4) positions exactly zero
    assert s["positions_read"] == 1.0
    assert s["zeros"] == pytest.approx((4 * 4 / 5 + 3 * 3 / 4) / 7, abs=1e-4)


def test_anti_diagonal_uniform_and_eos():
    anti = attention_stats([with_eos(np.eye(4)[::-1], eos=0.5)])
    assert anti["monotonic_steps"] == 0.0
    assert anti["spearman"] == -1.0
    assert anti["eos_mass"] == 0.5
    assert anti["entropy"] == pytest.approx(math.log(2), abs=1e-4)
    uniform = attention_stats([np.full((3, 5), 0.2)])
    assert uniform["entropy_norm"] == pytest.approx(1.0)
    assert uniform["entropy"] == pytest.approx(math.log(5), abs=1e-4)
    assert uniform["eos_mass"] == pytest.approx(0.2)
    assert uniform["spearman"] is None  # constant argmax
    assert uniform["monotonic_steps"] == 1.0  # ties count as non-decreasing
    assert uniform["positions_read"] == 5.0 and uniform["zeros"] == 0.0  # softmax-like
    assert anti["positions_read"] == 2.0  # its word and </s>


def test_stats_skip_empty_and_reduce_transformer_heads():
    empty = attention_stats([None, np.zeros((0, 3))])
    assert empty["sentences"] == 0 and empty["entropy"] is None and empty["monotonic_steps"] is None
    # (T, L, heads, S): last layer, two heads whose average is the identity-ish diagonal
    att = torch.zeros(3, 2, 2, 4)
    att[:, -1, 0, :3] = torch.eye(3)
    att[:, -1, 1, :3] = torch.eye(3)
    att[:, 0] = 0.25  # first layer uniform
    last = attention_stats([att])
    assert last["spearman"] == 1.0 and last["entropy"] == 0.0
    first = attention_stats([att], layer=0)
    assert first["entropy_norm"] == pytest.approx(1.0)
    assert attention_stats([att.numpy()], head=1)["entropy"] == 0.0


def test_spearman_with_ties():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(0.8944, abs=1e-4)
    assert spearman([1], [1]) is None and spearman([1, 2], [5, 5]) is None


def test_plot_bleu_by_length_several_runs(tmp_path):
    a = [
        {"bucket": "1-10", "sentences": 5, "bleu": 30.0},
        {"bucket": "11-20", "sentences": 3, "bleu": 20.0},
        {"bucket": "21+", "sentences": 0, "bleu": None},
    ]
    b = [dict(x, bleu=None if x["bleu"] is None else x["bleu"] + 5) for x in a]
    path = plot_bleu_by_length({"rnn bahdanau": a, "transformer": b}, tmp_path / "len.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert decode_png(path).shape == (*bleu_plot_size(3), 4)
    with pytest.raises(ValueError):
        plot_bleu_by_length({}, tmp_path / "x.png")


def test_bleu_by_length_lines_ticks_and_gaps():
    import matplotlib.pyplot as plt

    a = [
        {"bucket": "1-10", "sentences": 5, "bleu": 30.0},
        {"bucket": "11-20", "sentences": 3, "bleu": 20.0},
        {"bucket": "21+", "sentences": 0, "bleu": None},
    ]
    b = [{"bucket": "11-20", "bleu": 25.0}, {"bucket": "1-10", "bleu": 35.0}]  # other order
    fig, ax = plt.subplots()
    draw_bleu_by_length(ax, {"rnn bahdanau": a, "transformer": b})
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "1-10\n(n=5)",
        "11-20\n(n=3)",
        "21+\n(n=0)",
    ]
    assert [line.get_label() for line in ax.lines] == ["rnn bahdanau", "transformer"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [30.0, 20.0, np.nan])
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [35.0, 25.0, np.nan])  # by bucket name
    assert ax.get_ylim()[0] == 0
    ax.clear()
    draw_bleu_by_length(ax, {"x": a}, buckets=["1-10", "21+"])  # given buckets: plain labels
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1-10", "21+"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [30.0, np.nan])
    plt.close(fig)


def test_analyse_test_run(tmp_path):
    hyps = [
        SimpleNamespace(
            tokens=[5, 6], attention=torch.tensor(with_eos(np.eye(2)), dtype=torch.float32)
        ),
        SimpleNamespace(tokens=[7], attention=None),
    ]
    table = [
        {"bucket": "1-10", "sentences": 2, "bleu": 12.5},
        {"bucket": "11+", "sentences": 0, "bleu": None},
    ]
    (tmp_path / "metrics.json").write_text(json.dumps({"test_bleu": 12.5}))
    out = analyse_test_run(
        tmp_path, hyps, bleu_by_length=table, label="rnn bahdanau", write_metrics=True
    )
    assert out["attention_stats"]["sentences"] == 1 and out["attention_stats"]["spearman"] == 1.0
    assert (tmp_path / "bleu_by_length.png").read_bytes()[:8] == PNG_MAGIC
    merged = json.loads((tmp_path / "metrics.json").read_text())
    assert merged["test_bleu"] == 12.5 and merged["attention_stats"] == out["attention_stats"]

    # without a table: computed from the hypotheses, the tokenizer and the test split
    tok = SimpleNamespace(decode_tgt=lambda ids: ["a b c" if i[0] == 5 else "x" for i in ids])
    split = SimpleNamespace(src_text=["u v w", "y"], tgt_text=["a b c", "x"])
    res = analyse_test_run(tmp_path / "run2", hyps, tok, split, edges=(2,))
    assert [b["bucket"] for b in res["bleu_by_length"]] == ["1-2", "3+"]
    assert (tmp_path / "run2" / "bleu_by_length.png").is_file()
    pixels = decode_png(tmp_path / "run2" / "bleu_by_length.png")
    assert pixels.shape == (*bleu_plot_size(2), 4)
    assert has_colour(pixels, C0), "the run's line is not drawn"
    assert not (tmp_path / "run2" / "metrics.json").exists()  # write_metrics=False
    with pytest.raises(ValueError):
        analyse_test_run(tmp_path, hyps)


def test_analysis_cli(tmp_path, capsys):
    table = [{"bucket": "1-10", "sentences": 2, "bleu": 12.5}]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps({"model": "rnn", "attention": "luong_dot", "bleu_by_length": table})
    )
    (tmp_path / "m.json").write_text(json.dumps({"model": "transformer", "bleu_by_length": table}))
    out = tmp_path / "cmp.png"
    assert main(["bleu-length", str(run), str(tmp_path / "m.json"), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert decode_png(out).shape == (*bleu_plot_size(1), 4)
    assert list(bleu_length_tables([run, tmp_path / "m.json", run])) == [
        "rnn luong_dot",
        "transformer",
        "rnn luong_dot'",
    ]
    (tmp_path / "bad.json").write_text("{}")
    assert main(["bleu-length", str(tmp_path / "bad.json")]) == 2
    (tmp_path / "list.json").write_text("[]")
    assert main(["bleu-length", str(tmp_path / "list.json")]) == 2
    att = tmp_path / "att.jsonl"
    att.write_text(json.dumps({"line": 1, "attention": with_eos(np.eye(3)).tolist()}) + "\n")
    assert len(read_attention_jsonl(att)) == 1
    assert main(["stats", str(att)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["spearman"] == 1.0


def test_stats_on_trained_run(trained_run):
    """The trained run's metrics.json has a bleu_by_length table the plot accepts."""
    metrics = json.loads((trained_run / "metrics.json").read_text())
    path = plot_bleu_by_length({"tiny": metrics["bleu_by_length"]}, trained_run.parent / "len.png")
    assert path.is_file()
    assert decode_png(path).shape == (*bleu_plot_size(len(metrics["bleu_by_length"])), 4)
