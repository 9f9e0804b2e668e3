"""Tests for nmt.plotting: heatmap files, subword merging and the nmt-plot command."""

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
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = Path(path).read_bytes()[:24]
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_heatmap_png_and_svg_with_umlauts(tmp_path):
    w = np.random.default_rng(0).dirichlet(np.ones(5), size=4)
    src = ["▁wir", "▁müssen", "▁größer", "▁sein", "</s>"]
    tgt = ["▁we", "▁must", "▁be", "▁bigger"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_heatmap(w, src, tgt, tmp_path / "h.png", "rnn · bahdanau", svg=True)
    assert not [c for c in caught if "glyph" in str(c.message).lower()], "missing glyphs"
    width, height = png_size(tmp_path / "h.png")
    assert 300 <= width <= 2000 and 200 <= height <= 2000
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")


def test_long_sentences_shrink(tmp_path):
    w = np.full((45, 60), 0.01)
    plot_heatmap(
        w, [f"w{i}" for i in range(60)], [f"t{i}" for i in range(45)], tmp_path / "long.png"
    )
    width, height = png_size(tmp_path / "long.png")
    assert width <= 2200 and height <= 2200


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
