"""Tests for nmt.analysis: attention statistics, the BLEU-by-length plot, analyse_test_run."""

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
    main,
    plot_bleu_by_length,
    read_attention_jsonl,
    spearman,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    with pytest.raises(ValueError):
        plot_bleu_by_length({}, tmp_path / "x.png")


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
    (tmp_path / "bad.json").write_text("{}")
    assert main(["bleu-length", str(tmp_path / "bad.json")]) == 2
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
