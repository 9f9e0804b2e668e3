"""Output length control of the search (decode.min_len / decode.max_len, nmt.decoding.Lengths):
greedy and beam search of both model families, nmt-translate/nmt-evaluate, the benchmark."""

from __future__ import annotations

import pytest
import torch
from conftest import reversal_batch

from nmt.config import ConfigError, DecodeConfig, check_output_lengths
from nmt.decoding import Lengths, beam_search, greedy
from nmt.evaluate import main as evaluate_main
from nmt.translate import Translator
from nmt.translate import main as translate_main


@pytest.mark.parametrize("family", ["rnn", "transformer"])
@pytest.mark.parametrize("n", [2, 7, 25])
def test_min_equal_max_gives_exactly_n_tokens(reversal_models, family, n):
    """min_len = max_len = N: every output has N tokens, greedy and beam, whether N is below,
    near or far above what the model would write (a * S + b is 13-22 steps here)."""
    src, lens = reversal_batch()
    fixed = Lengths(min_len=n, max_len=n)
    for hyps in (
        greedy(reversal_models[family], src, lens, fixed, need_attention=True),
        beam_search(reversal_models[family], src, lens, beam=4, lengths=fixed, need_attention=True),
    ):
        assert [len(h.tokens) for h in hyps] == [n] * len(hyps)
        assert all(h.attention.shape[0] == n for h in hyps)  # one attention row per token


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_greedy_limits_cut_or_extend_the_free_output_only_where_they_bind(reversal_models, family):
    """Greedy is left to right, so a cap of k tokens gives the free output's first k tokens,
    and a minimum leaves outputs at least that long untouched and lengthens the others."""
    src, lens = reversal_batch()
    model = reversal_models[family]
    free = [h.tokens for h in greedy(model, src, lens)]
    k = sorted(len(t) for t in free)[len(free) // 2]  # the median length: binds for half
    capped = [h.tokens for h in greedy(model, src, lens, Lengths(max_len=k))]
    assert capped == [t[:k] for t in free]
    floor = [h.tokens for h in greedy(model, src, lens, Lengths(min_len=k))]
    assert all(len(t) >= k for t in floor)
    assert [f for f, t in zip(floor, free) if len(t) >= k] == [t for t in free if len(t) >= k]
    assert any(f[: len(t)] == t and len(f) > len(t) for f, t in zip(floor, free))
    for hyps in (beam_search(model, src, lens, 4, lengths=Lengths(min_len=k, max_len=k + 3)),):
        assert all(k <= len(h.tokens) <= k + 3 for h in hyps)


def test_lengths_come_from_the_config_and_bad_ones_are_refused():
    d = DecodeConfig(max_len_a=1.0, max_len_b=2, min_len=0, max_len=None)
    lens = torch.tensor([4, 9])  # source lengths with EOS
    assert Lengths.of(d).limits(lens).tolist() == [5, 10]  # steps with EOS: a * 3 + 2, a * 8 + 2
    assert Lengths(1.0, 2, min_len=7).limits(lens).tolist() == [8, 10]  # a minimum raises it
    assert Lengths(1.0, 2, max_len=6).limits(lens).tolist() == [5, 7]  # 6 tokens + EOS at most
    assert Lengths(1.0, 2, max_len=20).limits(lens).tolist() == [5, 10]  # a cap, not a target
    assert Lengths(1.0, 2, 6, 6).limits(lens).tolist() == [7, 7]  # exactly 6 tokens + EOS
    for low, high, message in (
        (-1, None, "decode.min_len=-1 must be >= 0"),
        (0, 0, "decode.max_len=0 must be >= 1"),
        (5, 4, "decode.min_len=5 is above decode.max_len=4"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_output_lengths(low, high, "decode.min_len", "decode.max_len")


def test_translate_and_evaluate_take_min_and_max_len(trained_run, tmp_path, capsys):
    """--min-len N --max-len N: nmt-translate writes the Translator's outputs of N tokens each;
    a contradiction is refused in one line before anything is written; nmt-evaluate takes them."""
    lines = ["a3 a1 a4", "a5 a0", "", "a2 a6 a5 a3 a5 a7 a0"]
    translator = Translator(trained_run)
    translator.limit_output(6, 6)
    texts, hyps = translator.translate(lines, beam=3)
    assert [len(h.tokens) for h in hyps if h is not None] == [6, 6, 6]
    assert hyps[2] is None and texts[2] == ""  # an empty line stays empty
    inp, out = tmp_path / "in.txt", tmp_path / "out.txt"
    inp.write_text("\n".join(lines) + "\n")
    args = [str(trained_run), "-i", str(inp), "-o", str(out), "--beam", "3"]
    assert translate_main([*args, "--min-len", "6", "--max-len", "6"]) == 0
    assert out.read_text().splitlines() == texts
    out.unlink()
    capsys.readouterr()
    assert translate_main([*args, "--min-len", "5", "--max-len", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--min-len=5 is above --max-len=4" in err[0]
    assert not out.exists()
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("a3 a1 a4\na5 a0\na1 a2 a6\n")
    ref.write_text("a4 a1 a3\na0 a5\na6 a2 a1\n")
    ev = [str(trained_run), "--src", str(src), "--ref", str(ref), "--beam", "1", "--json"]
    assert evaluate_main(ev) == 0
    free = capsys.readouterr().out.strip().splitlines()[-1]
    assert evaluate_main([*ev, "--max-len", "1"]) == 0
    one = capsys.readouterr().out.strip().splitlines()[-1]
    assert one != free  # one-token outputs score differently from free ones
