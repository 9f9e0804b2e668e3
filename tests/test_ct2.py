"""CTranslate2 export (nmt-export) and decoding (--engine ctranslate2) of a trained Transformer."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from nmt.config import ConfigError
from nmt.ct2 import CTranslate2Model, vmap_text
from nmt.data.stream import tokenizer_digest
from nmt.evaluate import main as evaluate_main
from nmt.export import main as export_main
from nmt.shortlist import N_SPECIAL, Shortlist
from nmt.translate import Translator
from nmt.translate import main as translate_main

# found, not imported: nmt imports ctranslate2 itself, after choosing its matmul backend
# (nmt.ct2.choose_gemm_backend; CTranslate2 reads CT2_USE_MKL when it is imported)
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ctranslate2") is None,
    reason="the deploy extra (ctranslate2) is not installed",
)


@pytest.fixture(scope="module")
def exported(explore_runs, tmp_path_factory):
    """The explorer's trained 2-layer Transformer (150 steps on reversal), exported."""
    out = tmp_path_factory.mktemp("ct2") / "model"
    ckpt = explore_runs / "model=transformer" / "checkpoints" / "best.pt"
    assert export_main([str(ckpt), "--format", "ctranslate2", "-o", str(out)]) == 0
    return ckpt, out


def _lines(explore_runs):
    data = explore_runs.parent / "data"
    return (data / "test.src").read_text().splitlines(), (
        data / "test.tgt"
    ).read_text().splitlines()


def test_exported_model_reproduces_greedy_output(exported, explore_runs):
    """Greedy decoding of every test line: CTranslate2 (float32) gives nmt's output on >= 98%
    of lines (measured: all of them), and int8 weights stay close."""
    ckpt, folder = exported
    src, _ = _lines(explore_runs)
    ours, _ = Translator(ckpt, precision="fp32").translate(src, beam=1)
    theirs, _ = Translator(folder, engine="ctranslate2").translate(src, beam=1)
    assert len(theirs) == len(ours) == len(src)
    same = sum(a == b for a, b in zip(ours, theirs)) / len(src)
    assert same >= 0.98, f"CTranslate2 greedy equals nmt's on {same:.1%} of lines"
    int8, _ = Translator(folder, engine="ctranslate2", quantize="int8").translate(src, beam=1)
    assert sum(a == b for a, b in zip(ours, int8)) / len(src) >= 0.8
    # in batches of 3, run side by side by CTranslate2's workers: the same lines, in order
    small, _ = Translator(folder, engine="ctranslate2").translate(src, beam=1, batch_size=3)
    assert small == theirs


def test_engine_in_the_command_line_tools(exported, explore_runs, tmp_path, capsys):
    """nmt-evaluate and nmt-translate take the exported folder with --engine ctranslate2: the
    same BLEU as nmt's own greedy decoding, one output line per input line."""
    ckpt, folder = exported
    data = explore_runs.parent / "data"
    args = ["--src", str(data / "test.src"), "--ref", str(data / "test.tgt"), "--beam", "1"]
    capsys.readouterr()
    assert evaluate_main([str(ckpt), *args, "--precision", "fp32", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluate_main([str(folder), *args, "--engine", "ctranslate2", "--json"]) == 0
    theirs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(ours["bleu"] - theirs["bleu"]) <= 0.2
    inp, out = tmp_path / "in.txt", tmp_path / "out.txt"
    inp.write_text("\n".join([*_lines(explore_runs)[0][:3], "", "a0"]) + "\n")
    rc = translate_main([str(folder), "--engine", "ctranslate2", "-i", str(inp), "-o", str(out)])
    assert rc == 0
    got = out.read_text().splitlines()
    assert len(got) == 5 and got[3] == ""


def test_loading_leaves_torch_threads_and_the_next_model_its_workers(exported):
    """CTranslate2 sets the process's OpenMP thread count to its intra_threads (1) when it loads
    a model; torch shares that count, so without a reset the next model loaded in the process
    (make bench --decode-deploy's second target) got one worker, at half the speed."""
    import torch

    _, folder = exported
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for quantize in (None, "int8"):
            model = Translator(folder, engine="ctranslate2", quantize=quantize).model
            assert model.translator.num_translators == 2  # one worker per thread, every time
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_export_refuses_an_rnn_and_bad_use(exported, explore_runs, tmp_path, capsys):
    rnn = explore_runs / "attention=luong_general" / "checkpoints" / "best.pt"
    assert export_main([str(rnn), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CTranslate2 runs Transformer models only" in err
    assert not (tmp_path / "x").exists()
    ckpt, folder = exported
    assert export_main([str(ckpt), "-o", str(folder)]) == 2  # not empty, no --force
    assert "exists and is not empty" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not an exported CTranslate2 model"):
        Translator(tmp_path, engine="ctranslate2")
    with pytest.raises(ConfigError, match="attention weights need --engine torch"):
        Translator(folder, engine="ctranslate2").translate(["a0 a1"], need_attention=True)


def test_vmap_text_lists_the_frequent_pieces_then_each_source_pieces_candidates():
    best = np.full((7, 2), -1, dtype=np.int64)
    best[4], best[6] = [5, 6], [4, -1]  # source piece 5 has no candidates: no line
    src = ["<pad>", "<unk>", "<s>", "</s>", "▁a", "▁b", "▁c"]
    tgt = ["<pad>", "<unk>", "<s>", "</s>", "▁x", "▁y", "▁z"]
    text = vmap_text(Shortlist(np.array([6]), best, 7, "tok"), src, tgt)
    assert text == "\t▁z\n▁a\t▁y ▁z\n▁c\t▁x\n"
    with pytest.raises(ConfigError, match="tab or line break"):
        vmap_text(Shortlist(np.array([6]), best, 7, "tok"), [*src[:4], "▁\ta", *src[5:]], tgt)


def _half_list(tok, path):
    """A shortlist that lets each of the first half of the task's symbols translate to itself
    and lists nothing else (no frequent pieces): decoding over it must change the output."""
    symbols = [
        s for s in range(N_SPECIAL, tok.src_vocab_size) if tok.src.id_to_piece(s)[1:2] == "a"
    ]
    keep = symbols[: len(symbols) // 2]
    best = np.full((tok.src_vocab_size, 1), -1, dtype=np.int64)
    for s in keep:
        best[s, 0] = tok.tgt.piece_to_id(tok.src.id_to_piece(s))
    empty = np.zeros(0, dtype=np.int64)
    Shortlist(empty, best, tok.tgt_vocab_size, tokenizer_digest(tok)).save(path)
    return {tok.src.id_to_piece(s).lstrip("▁") for s in keep}


def test_ctranslate2_decodes_over_the_shortlist_as_nmt_does(exported, explore_runs, tmp_path):
    """nmt-export --shortlist writes the list as CTranslate2's vocabulary map; decoding the
    folder with --shortlist gives nmt's own shortlist search (greedy, one batch: the same
    candidate union), which differs from the full search and writes only listed symbols."""
    ckpt, plain_folder = exported
    tr = Translator(ckpt, precision="fp32")
    listed, folder = tmp_path / "half.npz", tmp_path / "model"
    keep = _half_list(tr.tokenizer, listed)
    assert export_main([str(ckpt), "-o", str(folder), "--shortlist", str(listed)]) == 0
    assert (folder / "vmap.txt").is_file()
    src, _ = _lines(explore_runs)
    full, _ = tr.translate(src, beam=1, batch_size=len(src))
    ours, _ = Translator(ckpt, precision="fp32", shortlist=listed).translate(
        src, beam=1, batch_size=len(src)
    )
    ct2 = Translator(folder, engine="ctranslate2", shortlist=listed)
    theirs, _ = ct2.translate(src, beam=1, batch_size=len(src))
    assert ours != full
    assert set(" ".join(theirs).split()) <= keep | {"⁇"}  # <unk> is always a candidate
    same = sum(a == b for a, b in zip(ours, theirs)) / len(src)
    assert same >= 0.98, f"CTranslate2 with the vocabulary map equals nmt's on {same:.1%}"
    # the same folder without --shortlist decodes over the full vocabulary again
    again, _ = Translator(folder, engine="ctranslate2").translate(src, beam=1)
    plain, _ = Translator(plain_folder, engine="ctranslate2").translate(src, beam=1)
    assert again == plain


def test_a_shortlist_the_folder_was_not_exported_with_is_refused(
    exported, explore_runs, tmp_path, capsys
):
    ckpt, plain_folder = exported
    tok = Translator(ckpt, precision="fp32").tokenizer
    listed = tmp_path / "half.npz"
    _half_list(tok, listed)
    with pytest.raises(ConfigError, match="has no vocabulary map; export it with nmt-export"):
        Translator(plain_folder, engine="ctranslate2", shortlist=listed)
    folder = tmp_path / "model"
    assert export_main([str(ckpt), "-o", str(folder), "--shortlist", str(listed)]) == 0
    other = Shortlist.load(listed)
    Shortlist(np.array([N_SPECIAL]), other.best, other.tgt_vocab, other.tokenizer).save(
        tmp_path / "other.npz"
    )
    with pytest.raises(ConfigError, match="was exported with another shortlist"):
        Translator(folder, engine="ctranslate2", shortlist=tmp_path / "other.npz")
    # a list built for another vocabulary: one line, nothing written
    Shortlist(other.frequent, other.best, other.tgt_vocab + 1, other.tokenizer).save(
        tmp_path / "wrong.npz"
    )
    capsys.readouterr()
    bad = ["-o", str(tmp_path / "x"), "--shortlist", str(tmp_path / "wrong.npz")]
    assert export_main([str(ckpt), *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another model's vocabulary" in err
    assert not (tmp_path / "x").exists()


def test_sources_reach_ctranslate2_as_source_pieces():
    """With separate vocabularies (data.joint_vocab=false) source ids are source pieces: the
    engine must not spell them with the target vocabulary."""
    from nmt.decoding import Lengths

    seen = []

    model = _recording_model(seen)
    hyps = model.translate_ids([[5, 4]], 1, 1.0, Lengths(1.5, 10), 8)
    assert seen == [["▁b", "▁a"]] and hyps[0].tokens == [5]


class _Result:  # a ctranslate2.TranslationResult: echoes the source's first piece
    def __init__(self, source):
        self.hypotheses, self.scores = [["▁y" if source[0] == "▁b" else "▁x"]], [0.0]


def _recording_model(seen: list, awaited: list | None = None) -> CTranslate2Model:
    """A CTranslate2Model whose translator records each batch (`seen`) and, in `awaited`, how
    many batches had been submitted when each result was first awaited."""
    calls = []

    class Async:  # ctranslate2.AsyncTranslationResult
        def __init__(self, source):
            self.source = source

        def result(self):
            if awaited is not None:
                awaited.append(len(calls))
            return _Result(self.source)

    class Recorder:  # ctranslate2.Translator
        def translate_batch(self, batch, asynchronous=False, **kw):
            calls.append(kw)
            seen.extend(batch)
            assert asynchronous
            return [Async(source) for source in batch]

    model = CTranslate2Model.__new__(CTranslate2Model)
    model.src_vocab = ["<pad>", "<unk>", "<s>", "</s>", "▁a", "▁b"]
    model.index = {p: i for i, p in enumerate(["<pad>", "<unk>", "<s>", "</s>", "▁x", "▁y"])}
    model.use_vmap, model.translator = False, Recorder()
    return model


def test_every_batch_is_queued_before_the_first_result_is_awaited():
    """CTranslate2's workers each take a batch (inter_threads): all batches are submitted before
    the first result is read, and each output returns to its own line."""
    from nmt.decoding import Lengths

    seen, awaited = [], []
    model = _recording_model(seen, awaited)
    sources = [[5, 4, 4], [4], [5], [4, 5], [5, 5, 5, 4], [4, 4]]
    hyps = model.translate_ids(sources, 1, 1.0, Lengths(1.5, 10), 2)
    assert len(seen) == 6 and awaited and set(awaited) == {3}  # 3 batches of 2, all queued
    assert [h.tokens for h in hyps] == [[5] if s[0] == 5 else [4] for s in sources]


def test_gemm_backend_is_mkl_without_vnni(monkeypatch):
    """Without VNNI, CTranslate2's oneDNN int8 kernels saturate: nmt asks for MKL before the
    first import, never overrides the user's CT2_USE_MKL, and only warns once it is too late."""
    import sys

    from nmt import ct2

    monkeypatch.setattr(ct2.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(ct2.sys, "platform", "linux")
    monkeypatch.delenv("CT2_USE_MKL", raising=False)
    monkeypatch.setattr(ct2, "cpu_flags", lambda: ())
    monkeypatch.setattr(ct2, "cpu_vnni", lambda: False)
    ct2.choose_gemm_backend()
    assert "CT2_USE_MKL" not in ct2.os.environ  # the CPU's flags unknown: CTranslate2 chooses
    monkeypatch.setattr(ct2, "cpu_flags", lambda: ("avx2", "avx512_vnni"))
    monkeypatch.setattr(ct2, "cpu_vnni", lambda: True)
    ct2.choose_gemm_backend()
    assert "CT2_USE_MKL" not in ct2.os.environ  # VNNI: CTranslate2's own choice
    monkeypatch.setattr(ct2, "cpu_flags", lambda: ("avx2", "fma"))
    monkeypatch.setattr(ct2, "cpu_vnni", lambda: False)
    monkeypatch.setitem(sys.modules, "ctranslate2", object())
    ct2.choose_gemm_backend()
    assert "CT2_USE_MKL" not in ct2.os.environ  # imported already: too late, a warning only
    monkeypatch.delitem(sys.modules, "ctranslate2")
    ct2.choose_gemm_backend()
    assert ct2.os.environ["CT2_USE_MKL"] == "1"
    monkeypatch.setenv("CT2_USE_MKL", "0")
    ct2.choose_gemm_backend()
    assert ct2.os.environ["CT2_USE_MKL"] == "0"  # the user's choice stands
