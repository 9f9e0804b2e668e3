"""CTranslate2 export (nmt-export) and decoding (--engine ctranslate2) of a trained Transformer."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ctranslate2", reason="the deploy extra (ctranslate2) is not installed")

from nmt.config import ConfigError  # noqa: E402
from nmt.evaluate import main as evaluate_main  # noqa: E402
from nmt.export import main as export_main  # noqa: E402
from nmt.translate import Translator  # noqa: E402
from nmt.translate import main as translate_main  # noqa: E402


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
