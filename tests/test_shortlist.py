"""Vocabulary shortlist (nmt.shortlist): the table from piece links, the per-batch id list, the
search over it (both families, greedy and beam), nmt-shortlist and --shortlist end to end, and
bad input. The end-to-end run uses test_guided's deterministic stand-in for eflomal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import reversal_batch
from test_align import tiny_transformer_checkpoint

from nmt.data.arrays import TokenArray
from nmt.decoding import beam_search, greedy
from nmt.shortlist import N_SPECIAL, Shortlist, build_shortlist
from nmt.translate import Translator
from nmt.translate import main as translate_main


def test_table_ranks_target_pieces_by_links_and_keeps_the_frequent_ones():
    """p(t | s) from link counts: per source piece its targets by count, ties by id; the
    frequent list is the target side's most frequent pieces, specials excluded."""
    src = TokenArray.from_lists([np.array([4, 5]), np.array([4, 6]), np.array([4])])
    tgt = TokenArray.from_lists([np.array([7, 8, 8]), np.array([9, 8]), np.array([10, 3])])
    # (source position, target position) pairs per sentence
    links = TokenArray.from_lists(
        [np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 1, 0]), np.array([0, 0])]
    )
    sl = build_shortlist(src, tgt, links, 7, 11, "tok", frequent=2, best=2)
    # piece 4 is linked to 7, 8 (sentence 1), 8 (sentence 2), 10 (sentence 3): 8 first, then 7
    assert sl.best[4].tolist() == [8, 7]
    assert sl.best[5].tolist() == [8, -1]  # one target only: padded
    assert sl.best[6].tolist() == [9, -1]
    assert (sl.best[:4] == -1).all()
    assert sl.frequent.tolist() == [8, 7]  # 8 three times, then the lowest id of the ones seen once


def test_vocab_holds_the_specials_the_frequent_and_the_sources_translations():
    best = np.full((8, 2), -1, dtype=np.int64)
    best[4], best[5], best[6] = [20, 21], [22, -1], [30, 31]
    sl = Shortlist(np.array([10, 11]), best, 40, "tok")
    src = torch.tensor([[4, 5, 0], [5, 4, 4]])  # padding (0) selects nothing
    assert sl.vocab(src).tolist() == [0, 1, 2, 3, 10, 11, 20, 21, 22]
    assert sl.vocab(torch.tensor([[6]])).tolist()[:N_SPECIAL] == list(range(N_SPECIAL))


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_a_list_of_every_id_is_the_full_search(reversal_models, family):
    src, lens = reversal_batch()
    model = reversal_models[family]
    every = torch.arange(model_vocab(model))
    for search in (
        lambda v: greedy(model, src, lens, need_attention=True, vocab=v),
        lambda v: beam_search(model, src, lens, 4, need_attention=True, vocab=v),
    ):
        full, listed = search(None), search(every)
        assert [h.tokens for h in listed] == [h.tokens for h in full]
        assert [h.score for h in listed] == pytest.approx([h.score for h in full], abs=1e-5)
        assert all(torch.allclose(a.attention, b.attention) for a, b in zip(listed, full))


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_the_search_writes_only_listed_ids_and_keeps_greedy_output_inside_the_list(
    reversal_models,
    family,
):
    """Outputs use only the listed ids; greedy output whose tokens are all listed is unchanged
    (normalising over fewer ids does not move an argmax), one that is not changes."""
    src, lens = reversal_batch()
    model = reversal_models[family]
    full = greedy(model, src, lens)
    used = sorted({t for h in full for t in h.tokens})
    assert len(used) >= 2  # so that half of them leaves greedy some word it needs
    vocab = torch.tensor(sorted(set(range(N_SPECIAL)) | set(used)))
    assert [h.tokens for h in greedy(model, src, lens, vocab=vocab)] == [h.tokens for h in full]
    small = vocab[: N_SPECIAL + max(1, len(used) // 2)]  # half the ids greedy used
    for hyps in (
        greedy(model, src, lens, vocab=small),
        beam_search(model, src, lens, 3, vocab=small),
    ):
        assert {t for h in hyps for t in h.tokens} <= set(small.tolist())
    assert [h.tokens for h in greedy(model, src, lens, vocab=small)] != [h.tokens for h in full]


def model_vocab(model) -> int:
    layer = model.output_layer if hasattr(model, "output_layer") else model.generator
    return layer.weight.size(0)


def test_nmt_shortlist_and_translate_end_to_end(trained_run, tmp_path, capsys, stand_in_eflomal):
    """nmt-shortlist on a reversal run (links: word i <-> word n-1-i, i.e. each symbol with
    itself): every source symbol's best translation is that symbol. nmt-translate --shortlist
    keeps line alignment, writes only the batch's own symbols, and with a list that holds
    every piece (--frequent above the vocabulary) writes exactly what it writes without."""
    from nmt.shortlist import main as shortlist_main

    out = tmp_path / "sl.npz"
    assert shortlist_main([str(trained_run), "-o", str(out), "--frequent", "0", "--best", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    sl = Shortlist.load(out)
    tr = Translator(trained_run)
    tok = tr.tokenizer
    for s in range(N_SPECIAL, tok.src_vocab_size):
        if sl.best[s, 0] >= 0:
            assert tok.tgt.id_to_piece(int(sl.best[s, 0])) == tok.src.id_to_piece(s)
    listed = {tok.src.id_to_piece(s) for s in range(tok.src_vocab_size) if sl.best[s, 0] >= 0}
    assert listed == {f"▁a{i}" for i in range(8)}  # every symbol of the task
    lines = ["a3 a1 a4", "", "a5 a0 a2 a6 a7"]
    inp, plain, short = tmp_path / "in.txt", tmp_path / "plain.txt", tmp_path / "short.txt"
    inp.write_text("\n".join(lines) + "\n")
    base = [str(trained_run), "-i", str(inp), "--beam", "1"]
    assert translate_main([*base, "-o", str(plain)]) == 0
    assert translate_main([*base, "-o", str(short), "--shortlist", str(out)]) == 0
    got = short.read_text().splitlines()
    assert len(got) == 3 and got[1] == ""
    assert set(" ".join(got).split()) <= set(" ".join(lines).split())  # one batch: its symbols
    every = tmp_path / "every.npz"
    assert shortlist_main([str(trained_run), "-o", str(every), "--frequent", "1000"]) == 0
    assert translate_main([*base, "-o", str(short), "--shortlist", str(every)]) == 0
    assert short.read_text() == plain.read_text()


def test_bad_shortlists_are_refused_in_one_line(trained_run, tmp_path, capsys):
    inp = tmp_path / "in.txt"
    inp.write_text("a1 a2\n")
    other = Shortlist(np.zeros(0, np.int64), np.full((5, 1), -1), 5, "another")
    other.save(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a shortlist")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    bad_ids = Shortlist(np.array([7]), np.full((5, 1), -1), 5, "another")
    bad_ids.save(tmp_path / "bad_ids.npz")
    out = tmp_path / "out.txt"
    for extra, message in (
        (["--shortlist", str(tmp_path / "missing.npz")], "no such file"),
        (["--shortlist", str(tmp_path / "junk.npz")], "not a shortlist"),
        (["--shortlist", str(tmp_path / "array.npz")], "not a shortlist"),
        (["--shortlist", str(tmp_path / "bad_ids.npz")], "ids outside the 5-piece vocabulary"),
        (["--shortlist", str(tmp_path / "other.npz")], "another model's vocabulary"),
        (
            ["--shortlist", str(tmp_path / "other.npz"), "--engine", "ctranslate2"],
            "not an exported CTranslate2 model",  # an exported folder takes one (test_ct2)
        ),
    ):
        capsys.readouterr()
        assert translate_main([str(trained_run), "-i", str(inp), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not out.exists()
    from nmt.shortlist import main as shortlist_main

    for argv, message in (
        (["--best", "0"], "--best 0: must be >= 1"),
        (["--frequent", "-1"], "--frequent -1"),
    ):
        capsys.readouterr()
        assert shortlist_main([str(trained_run), "-o", str(tmp_path / "x.npz"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.npz").exists()


def test_int8_with_a_shortlist_keeps_the_output_layer_float(trained_run, tmp_path, capsys):
    """--quantize int8 --shortlist: every linear layer but the output projection is int8; a
    shortlist of every piece reproduces that model's full search; a one-piece-per-source list
    keeps to the batch's symbols and line alignment (both families)."""
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

    from nmt.models.quantize import quantize_int8
    from nmt.shortlist import main as shortlist_main

    every, few = tmp_path / "every.npz", tmp_path / "few.npz"
    assert shortlist_main([str(trained_run), "-o", str(every), "--frequent", "1000"]) == 0
    assert shortlist_main([str(trained_run), "-o", str(few), "--frequent", "0", "--best", "1"]) == 0
    lines = ["a3 a1 a4", "", "a5 a0 a2 a6 a7", "a2 a2 a0"]
    for run in (trained_run, tiny_transformer_checkpoint(trained_run)):
        tr = Translator(run, quantize="int8", shortlist=every)
        assert type(tr.model.output_layer) is nn.Linear
        linears = [m for m in tr.model.modules() if isinstance(m, (nn.Linear, QuantizedLinear))]
        assert sum(isinstance(m, QuantizedLinear) for m in linears) == len(linears) - 1
        ref = Translator(run, precision="fp32")
        ref.model = quantize_int8(ref.model, keep_output=True)
        for beam in (1, 3):
            assert tr.translate(lines, beam)[0] == ref.translate(lines, beam)[0]
        got = Translator(run, quantize="int8", shortlist=few).translate(lines, 3)[0]
        assert len(got) == 4 and got[1] == ""
        assert set(" ".join(got).split()) <= set(" ".join(lines).split())
