"""Tests for nmt.plotting (subword merging, the nmt-plot command) and the heatmaps nmt.viz draws."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from nmt.plotting import (
    main,
    merge_subwords,
    output_paths,
    plot_heatmap,
    read_records,
    record_title,
    records_from_checkpoint,
)
from nmt.viz import draw_heatmap, draw_links, plot_attention_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = Path(path).read_bytes()[:24]
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def decoded_size(path: Path) -> tuple[int, int]:
    """(width, height) of the fully decoded PNG."""
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    return width, height


def tick_texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


def test_plot_heatmap_png_and_svg_with_umlauts(tmp_path):
    w = np.random.default_rng(0).dirichlet(np.ones(5), size=4)
    src = ["▁wir", "▁müssen", "▁größer", "▁sein", "</s>"]
    tgt = ["▁we", "▁must", "▁be", "▁bigger"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot_heatmap(w, src, tgt, tmp_path / "h.png", "rnn · bahdanau", svg=True)
    assert not [c for c in caught if "glyph" in str(c.message).lower()], "missing glyphs"
    width, height = png_size(tmp_path / "h.png")
    assert 300 <= width <= 2000 and 200 <= height <= 2000
    assert decoded_size(tmp_path / "h.png") == (width, height) == (480, 360)  # the 4 x 3 minimum
    ax, colorbar = fig.axes
    np.testing.assert_allclose(ax.images[0].get_array(), w, rtol=1e-6)
    assert tick_texts(ax.get_xticklabels()) == src and tick_texts(ax.get_yticklabels()) == tgt
    assert ax.get_title() == "rnn · bahdanau" and ax.get_xlabel() == "source"
    assert ax.images[0].get_clim() == pytest.approx((0.0, w.max()))
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")


def test_long_sentences_shrink(tmp_path):
    w = np.random.default_rng(1).dirichlet(np.ones(60), size=45)
    fig = plot_heatmap(
        w, [f"w{i}" for i in range(60)], [f"t{i}" for i in range(45)], tmp_path / "long.png"
    )
    width, height = png_size(tmp_path / "long.png")
    assert width <= 2200 and height <= 2200
    # 13 inches for the longest side (60 tokens) instead of 0.32 inch a token, at 120 dpi
    cell = 13.0 / 60
    assert decoded_size(tmp_path / "long.png") == (
        round(120 * (1.8 + cell * 60)),
        round(120 * (1.2 + cell * 45)),
    )
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == 60 and len(ax.get_yticklabels()) == 45
    assert {t.get_fontsize() for t in ax.get_xticklabels()} == {6}  # int(360 / 60)
    np.testing.assert_allclose(ax.images[0].get_array(), w, rtol=1e-6)


def test_draw_heatmap_on_given_axes_cuts_labels_and_blanks_nan_rows():
    import matplotlib.pyplot as plt

    w = np.array([[0.2, 0.8], [np.nan, np.nan]])
    fig, ax = plt.subplots()
    image = draw_heatmap(ax, w, ["▁" + "x" * 30, "</s>"], ["▁a", "…"], title="t", fontsize=5)
    assert tick_texts(ax.get_xticklabels()) == ["▁" + "x" * 16 + "…", "</s>"]
    assert tick_texts(ax.get_yticklabels()) == ["▁a", "…"]
    np.testing.assert_allclose(image.get_array(), w, rtol=1e-6)  # NaN stays NaN: a blank row
    assert image.get_clim() == pytest.approx((0.0, 0.8)) and ax.get_title() == "t"
    with pytest.raises(ValueError, match="matrix"):
        draw_heatmap(ax, np.zeros(3), [], [])
    plt.close(fig)


def test_links_over_a_heatmap_mark_sure_possible_and_predicted():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_heatmap(ax, np.eye(3), ["a", "b", "c"], ["x", "y", "z"])
    draw_links(ax, sure={(0, 0), (1, 1)}, possible={(1, 1), (2, 1)}, predicted={(2, 2), (0, 0)})
    styles = sorted(p.get_linestyle() for p in ax.patches)
    assert styles == ["-", "-", "--"]  # two sure squares, one possible-only (dashed)
    assert {tuple(p.get_xy()) for p in ax.patches} == {(-0.5, -0.5), (0.5, 0.5), (1.5, 0.5)}
    (dots,) = ax.collections
    assert sorted(map(tuple, dots.get_offsets().tolist())) == [(0.0, 0.0), (2.0, 2.0)]
    plt.close(fig)


def test_attention_grid_rows_columns_and_messages(tmp_path):
    rng = np.random.default_rng(2)
    w1, w2 = rng.dirichlet(np.ones(4), size=3), rng.dirichlet(np.ones(2), size=5)
    rows = [
        ("bahdanau", [(["▁a", "▁b", "▁c", "</s>"], ["x", "y", "z"], w1), "empty translation"]),
        ("luong_dot", [(["▁a", "</s>"], list("vwxyz"), w2)]),  # one sentence short
    ]
    fig = plot_attention_grid(rows, 2, tmp_path / "grid.png")
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["bahdanau", "luong_dot"]
    assert [ax.get_title() for ax in axes[0]] == ["test sentence 1", "test sentence 2"]
    np.testing.assert_allclose(axes[0, 0].images[0].get_array(), w1, rtol=1e-6)
    np.testing.assert_allclose(axes[1, 0].images[0].get_array(), w2, rtol=1e-6)
    assert tick_texts(axes[1, 0].get_yticklabels()) == list("vwxyz")
    assert [t.get_text() for t in axes[0, 1].texts] == ["empty translation"]
    assert [t.get_text() for t in axes[1, 1].texts] == ["no sentence"]
    assert not axes[0, 1].images
    # columns as wide as their longest source, rows as tall as their longest target (min 6)
    width, height = fig.get_size_inches()
    assert (width, height) == pytest.approx((1.2 + 0.22 * 6 + 1.2 + 0.22 * 6, 2 * (1.3 + 0.22 * 6)))
    assert decoded_size(tmp_path / "grid.png") == (round(100 * width), round(100 * height))


def test_merge_subwords_sums_source_and_averages_target():
    att = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.1, 0.2, 0.6, 0.1],
            [0.0, 0.5, 0.3, 0.2],
            [0.1, 0.3, 0.5, 0.1],
        ]
    )
    w, src, tgt = merge_subwords(
        att, ["▁das", "▁häus", "chen", "</s>"], ["▁the", "▁little", "▁ho", "use"]
    )
    assert src == ["das", "häuschen", "</s>"]
    assert tgt == ["the", "little", "house"]
    np.testing.assert_allclose(w, [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.05, 0.8, 0.15]])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def _write_jsonl(path: Path) -> Path:
    records = [
        {
            "line": 1,
            "source_tokens": ["▁hallo", "▁welt", "</s>"],
            "target_tokens": ["▁hello", "▁world"],
            "attention": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]],
            "model": "rnn",
            "mechanism": "bahdanau",
        },
        {"line": 2, "source_tokens": [], "target_tokens": [], "attention": []},
        {
            "line": 3,
            "source_tokens": ["▁schö", "n", "</s>"],
            "target_tokens": ["▁beau", "ti", "ful"],
            "attention": [[0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]],
        },
    ]
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def test_read_records_titles_and_output_paths(tmp_path):
    path = _write_jsonl(tmp_path / "att.jsonl")
    first, _, third = read_records(path, [1, 2, 3])
    assert record_title(first, str(path)) == "rnn · bahdanau"
    assert record_title(third, str(path)) == "att.jsonl line 3"
    assert record_title({"model": "transformer", "layer": -1, "head": None}, "x") == (
        "transformer · layer -1, mean of heads"
    )
    assert read_records(path)[0]["line"] == 1
    assert [r["line"] for r in read_records(path, [3, 1])] == [3, 1]
    with pytest.raises(ValueError, match="no record"):
        read_records(path, [9])
    assert output_paths("x/out.png", 1, [3]) == [Path("x/out.png")]
    assert output_paths("x/out.png", 2, [3, 1]) == [Path("x/out_3.png"), Path("x/out_1.png")]


def test_nmt_plot_from_json(tmp_path, capsys):
    path = _write_jsonl(tmp_path / "att.jsonl")
    assert main([str(path), "-o", str(tmp_path / "one.png")]) == 0
    assert png_size(tmp_path / "one.png")[0] > 100
    out = tmp_path / "many.png"
    assert (
        main([str(path), "--line", "1", "--line", "3", "--merge-subwords", "--svg", "-o", str(out)])
        == 0
    )
    for name in ("many_1.png", "many_3.png", "many_1.svg", "many_3.svg"):
        assert (tmp_path / name).is_file(), name
    png_size(tmp_path / "many_3.png")
    # an empty record is skipped with a warning
    assert main([str(path), "--line", "2", "-o", str(tmp_path / "empty.png")]) == 0
    assert not (tmp_path / "empty.png").exists()
    assert "no attention" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2


def test_nmt_plot_from_checkpoint(trained_run, tmp_path, capsys):
    ckpt = str(trained_run / "checkpoints" / "best.pt")
    out = tmp_path / "ckpt.png"
    assert main([ckpt, "--src", "a1 a2 a3 a4", "-o", str(out)]) == 0
    png_size(out)
    assert decoded_size(out)[0] >= 480
    forced = tmp_path / "forced.svg"
    assert (
        main(
            [
                str(trained_run),
                "--src",
                "a1 a2 a3",
                "--ref",
                "a3 a2 a1",
                "-o",
                str(forced),
                "--merge-subwords",
            ]
        )
        == 0
    )
    assert forced.read_text().lstrip().startswith("<?xml")
    assert "forced.svg" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([ckpt, "-o", str(out)])  # a checkpoint needs --src


def test_nmt_plot_transformer_layer_and_head(trained_run, tmp_path, capsys):
    from test_align import tiny_transformer_checkpoint

    ckpt = str(tiny_transformer_checkpoint(trained_run))
    out = tmp_path / "tf.png"
    assert main([ckpt, "--src", "a1 a2 a3", "--layer", "0", "--head", "1", "-o", str(out)]) == 0
    png_size(out)
    assert main([ckpt, "--src", "a1 a2", "--ref", "a2 a1", "-o", str(tmp_path / "tf2.png")]) == 0
    assert main([ckpt, "--src", "a1", "--layer", "5", "-o", str(out)]) == 2
    assert "--layer 5 is out of range" in capsys.readouterr().err


def checkpoint_with(trained_run: Path, path: Path, **data) -> Path:
    """A copy of the trained run's best checkpoint whose config has other `data.*` settings."""
    from nmt.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(trained_run / "checkpoints" / "best.pt")
    ckpt["config"]["data"].update(data)
    save_checkpoint(path, ckpt)
    return path


def test_checkpoint_records_use_the_models_text_normalisation(trained_run, tmp_path):
    """Token labels go through Translator.prepare: data.lowercase and data.tokenize both apply."""
    ckpt = checkpoint_with(trained_run, tmp_path / "lt.pt", lowercase=True, tokenize=True)
    plain = records_from_checkpoint(trained_run, ["a1 , a2 a3"])[0]
    mixed = records_from_checkpoint(ckpt, ["A1,A2 A3"])[0]
    assert mixed["source_tokens"] == plain["source_tokens"]
    assert "," in "".join(mixed["source_tokens"])  # split off by data.tokenize
    assert np.shape(mixed["attention"]) == (
        len(mixed["target_tokens"]),
        len(mixed["source_tokens"]),
    )
    forced = records_from_checkpoint(ckpt, ["A1 A2 A3"], ["A3 A2 A1"])[0]
    expected = records_from_checkpoint(trained_run, ["a1 a2 a3"], ["a3 a2 a1"])[0]
    assert forced["source_tokens"] == expected["source_tokens"]
    assert forced["target_tokens"] == expected["target_tokens"]
    assert np.shape(forced["attention"]) == (
        len(forced["target_tokens"]),
        len(forced["source_tokens"]),
    )
