"""Tests for the nmt-align command and forced decoding (nmt.align.cli, run, forced) on the tiny
trained run; the parts have their own files: test_align_gold.py, test_align_words.py,
test_align_links.py, test_align_eflomal.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nmt.align
from nmt.align import AlignError, forced_attention, main, model_alignments


def test_public_names_stay_importable():
    from importlib.metadata import entry_points

    from nmt.align.cli import main as cli_main

    for name in nmt.align.__all__:
        assert getattr(nmt.align, name) is not None
    assert nmt.align.main is cli_main
    with pytest.raises(AttributeError):
        nmt.align.no_such_name  # noqa: B018
    # the console script nmt-align = nmt.align:main
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "nmt-align"]
    assert script.value == "nmt.align:main"


def test_lines_ranges():
    from nmt.align import parse_lines

    assert parse_lines(None) == (0, None)
    assert parse_lines("101-508") == (100, 508)
    assert parse_lines("3-") == (2, None)
    for bad in ("0-5", "5-3", "x-2", "7"):
        with pytest.raises(AlignError, match="--lines"):
            parse_lines(bad)


def test_nmt_align_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--src", "a", "--tgt", "b", "--gold", "c"])  # neither checkpoint nor --eflomal
    capsys.readouterr()
    with pytest.raises(SystemExit):  # every threshold is checked
        main(["--src", "a", "--tgt", "b", "--gold", "c", "--eflomal", "--threshold", "0.2,1.5"])
    assert "--threshold must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert main(["--src", str(tmp_path / "nope"), "--tgt", "b", "--gold", "c", "--eflomal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--src {tmp_path / 'nope'}: file not found" in err[0]


# --- end to end on the tiny trained run ---------------------------------------------------------
def _reverse_gold(run: Path, tmp: Path, n: int = 6) -> tuple[Path, Path, Path, list[str]]:
    data = run.parent / "data"
    src = (data / "test.src").read_text().splitlines()[:n]
    tgt = (data / "test.tgt").read_text().splitlines()[:n]
    gold = []
    for s in src:
        k = len(s.split())
        gold.append(" ".join(f"{i + 1}-{k - i}" for i in range(k)))  # reversed diagonal
    paths = tmp / "test.src", tmp / "test.tgt", tmp / "gold.talp"
    for p, lines in zip(paths, (src, tgt, gold)):
        p.write_text("".join(line + "\n" for line in lines))
    return (*paths, src)


def test_nmt_align_end_to_end_on_trained_run(trained_run, tmp_path, capsys):
    src, tgt, gold, lines = _reverse_gold(trained_run, tmp_path)
    out = tmp_path / "aer.json"
    ckpt = str(trained_run / "checkpoints" / "best.pt")
    args = ["--src", str(src), "--tgt", str(tgt), "--gold", str(gold), "--gold-order", "src-tgt"]
    rc = main([ckpt, *args, "--threshold", "0.2,0.5", "--json", str(out), "--reverse-ckpt", ckpt])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["sentences"] == len(lines) and report["scored_sentences"] == len(lines)
    methods = {"argmax", "threshold>=0.2", "reverse argmax", "intersection", "grow-diag"}
    methods |= {"grow-diag-final", "shift-att threshold>=0.2"}
    methods |= {"threshold>=0.5", "shift-att threshold>=0.5"}  # one method per threshold
    methods |= {f"{p}{m}" for p in ("shift-att ", "reverse shift-att ") for m in ("argmax",)}
    methods |= {f"shift-att {m}" for m in ("intersection", "grow-diag", "grow-diag-final")}
    for p in ("", "shift-att "):  # both directions' threshold links, and their symmetrisations
        for t in ("0.2", "0.5"):
            methods.add(f"reverse {p}threshold>={t}")
            methods |= {f"{p}{m} of threshold>={t}" for m in ("intersection", "grow-diag")}
            methods.add(f"{p}grow-diag-final of threshold>={t}")
            methods.add(f"{p}agreement of threshold>={t}")  # both directions' weights combined
        methods.add(f"{p}agreement")
    assert set(report["results"]) == methods
    assert report["lines"] == f"1-{len(lines)}"
    for r in report["results"].values():
        assert 0.0 <= r["aer"] <= 1.0
    # a higher threshold keeps a subset of the links; argmax gives exactly one per target word
    results = report["results"]
    assert results["threshold>=0.5"]["links"] <= results["threshold>=0.2"]["links"]
    both = results["intersection of threshold>=0.2"]["links"]
    assert both <= min(results[f"{d}threshold>=0.2"]["links"] for d in ("", "reverse "))
    assert results["grow-diag-final of threshold>=0.2"]["links"] >= both
    # both weights >= T make their geometric mean >= T: agreement keeps the intersection
    assert results["agreement of threshold>=0.2"]["links"] >= both
    assert results["agreement"]["links"] == sum(len(s.split()) for s in lines)
    assert report["results"]["argmax"]["links"] == sum(len(s.split()) for s in lines)
    assert report["results"]["argmax"]["sure"] == sum(len(s.split()) for s in lines)
    text = capsys.readouterr().out
    assert "argmax" in text and "AER" in text
    # --lines 2-4 scores those three sentences, numbered as in the files
    out3 = tmp_path / "aer3.json"
    plots = tmp_path / "plots"
    extra = ["--plot-lines", "3", "--plot-dir", str(plots)]
    assert main([ckpt, *args, "--lines", "2-4", "--json", str(out3), *extra]) == 0
    import matplotlib.image

    for name in ("line_3.png", "line_3_shift.png"):  # word-level attention with the links
        assert matplotlib.image.imread(plots / name).ndim == 3
    part = json.loads(out3.read_text())
    assert part["lines"] == "2-4" and part["scored_sentences"] == 3
    words = sum(len(s.split()) for s in lines[1:4])
    assert part["results"]["argmax"]["links"] == words == part["results"]["argmax"]["sure"]
    assert main([ckpt, *args, "--lines", "7-9"]) == 2
    assert "the files have 6 lines" in capsys.readouterr().err
    # the anti-diagonal gold is its own transpose, so flipping the order changes nothing
    out2 = tmp_path / "aer2.json"
    assert main([ckpt, *args[:-1], "tgt-src", "--json", str(out2)]) == 0
    r2 = json.loads(out2.read_text())["results"]["argmax"]
    assert r2 == report["results"]["argmax"]
    # a Transformer checkpoint with one head of the first layer; a bad head is a clean error
    tf = str(tiny_transformer_checkpoint(trained_run))
    assert main([tf, *args, "--layer", "0", "--head", "1"]) == 0
    assert main([tf, *args, "--head", "7"]) == 2
    assert "--head 7 is out of range" in capsys.readouterr().err


def tiny_transformer_checkpoint(run: Path, path: Path | None = None) -> Path:
    """An untrained 2-layer, 2-head Transformer with the trained run's config and tokenizer
    (no training), written once next to the run."""
    import torch

    from nmt.checkpoint import load_checkpoint, save_checkpoint
    from nmt.config import to_dataclass
    from nmt.data.tokenizer import Tokenizer
    from nmt.models import build_model

    path = path or run.parent / "tiny_transformer.pt"
    if path.is_file():
        return path
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    sizes = {"d_model": 16, "heads": 2, "ff_size": 32, "enc_layers": 2, "dec_layers": 2}
    config = {**ckpt["config"], "model": {"arch": "transformer", "dropout": 0.0, **sizes}}
    cfg = to_dataclass(config)
    tok = Tokenizer.from_dict(ckpt["tokenizer"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.attention, tok.src_vocab_size, tok.tgt_vocab_size)
    save_checkpoint(
        path, {"config": config, "tokenizer": ckpt["tokenizer"], "model": model.state_dict()}
    )
    return path


def hard_copy_checkpoint(run: Path, path: Path) -> Path:
    """The trained run's model as a hard-attention (Gumbel) checkpoint: the same weights, its
    attention wrapped (`HardAttention.inner`), so its soft read-out is the soft model's."""
    from nmt.checkpoint import load_checkpoint, save_checkpoint
    from nmt.config import to_dataclass
    from nmt.data.tokenizer import Tokenizer
    from nmt.models import build_model

    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    config = {**ckpt["config"], "attention": {**ckpt["config"]["attention"], "hard": "gumbel"}}
    cfg, tok = to_dataclass(config), Tokenizer.from_dict(ckpt["tokenizer"])
    model = build_model(cfg.model, cfg.attention, tok.src_vocab_size, tok.tgt_vocab_size)
    soft = ckpt["model"]
    weights = {k: soft.get(k.replace(".inner.", "."), v) for k, v in model.state_dict().items()}
    assert sum(k.replace(".inner.", ".") in soft for k in weights) == len(soft)  # all moved over
    save_checkpoint(path, {**ckpt, "config": config, "model": weights})  # its step too
    return path


def test_forced_attention_shapes_batching_and_heads(trained_run, tmp_path):
    from nmt.translate import Translator

    src = ["a1 a2 a3", "a4 a5 a6 a7 a0 a1", "a2"]
    tgt = ["a3 a2 a1", "a1 a0 a7 a6 a5 a4", "a2"]
    rnn = Translator(trained_run)
    batched = forced_attention(rnn, src, tgt, batch_size=3)
    single = forced_attention(rnn, src, tgt, batch_size=1)
    for s, t, a, b in zip(src, tgt, batched, single):
        assert a.shape == (len(t.split()) + 1, len(s.split()) + 1)  # word-level pieces + EOS
        np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(a, b, atol=1e-5)  # padding does not change the weights
    tf = Translator(tiny_transformer_checkpoint(trained_run))
    mean = forced_attention(tf, src, tgt)
    heads = [forced_attention(tf, src, tgt, head=h) for h in (0, 1)]
    first_layer = forced_attention(tf, src, tgt, layer=0)
    for k, (s, t) in enumerate(zip(src, tgt)):
        assert mean[k].shape == (len(t.split()) + 1, len(s.split()) + 1)
        np.testing.assert_allclose(mean[k], (heads[0][k] + heads[1][k]) / 2, atol=1e-6)
    assert not np.allclose(first_layer[1], mean[1])
    with pytest.raises(AlignError, match="--head 2"):
        forced_attention(tf, src, tgt, head=2)
    with pytest.raises(AlignError, match="--layer 2"):
        forced_attention(tf, src, tgt, layer=2)
    # guided with full target context: the guided layer (-2 = 0) read from that pass, the rest
    # as before; padding still changes nothing
    last_layer = forced_attention(tf, src, tgt, layer=1)
    tf.cfg.trainer.guided_alignment.weight, tf.cfg.trainer.guided_alignment.full_context = 1, True
    full = forced_attention(tf, src, tgt, layer=0, batch_size=3)
    assert not np.allclose(full[1], first_layer[1])
    single, unchanged = forced_attention(tf, src, tgt, 1, 0), forced_attention(tf, src, tgt, 32, 1)
    for k in range(3):
        np.testing.assert_allclose(full[k], single[k], atol=1e-6)
        np.testing.assert_allclose(unchanged[k], last_layer[k])
        np.testing.assert_allclose(full[k].sum(axis=1), 1.0, atol=1e-5)


def test_extra_steps_leave_the_forced_rows_unchanged(trained_run):
    """The EOS steps fed for the shifted read-out add rows and change none before them (the
    decoder is causal), for the RNN and the Transformer."""
    from nmt.translate import Translator

    src, tgt = ["a1 a2 a3", "a4 a5 a6 a7"], ["a3 a2 a1", "a7 a6 a5 a4"]
    full = Translator(tiny_transformer_checkpoint(trained_run))  # guided with full context:
    full.cfg.trainer.guided_alignment.weight = 1.0  # its layer -2 (= 0) has no future mask,
    full.cfg.trainer.guided_alignment.full_context = True  # and must not see the extra steps
    tf = Translator(tiny_transformer_checkpoint(trained_run))
    for tr, layer in ((Translator(trained_run), -1), (tf, -1), (tf, 0), (full, 0), (full, 1)):
        plain = forced_attention(tr, src, tgt, layer=layer)
        extra = forced_attention(tr, src, tgt, layer=layer, extra_steps=2)
        for p, e in zip(plain, extra):
            assert e.shape == (p.shape[0] + 2, p.shape[1])
            np.testing.assert_allclose(e[: len(p)], p, atol=1e-6)
            np.testing.assert_allclose(e.sum(axis=1), 1.0, atol=1e-5)


def test_shifted_readout_reads_the_rows_after_the_prediction(trained_run):
    """Shift-Att links of a word are the argmax of the row `readout_shift` steps after the one
    that predicts it: 1 for the Luong layout and the Transformer, 2 for Bahdanau's."""
    from nmt.align.forced import readouts
    from nmt.align.links import extract_argmax
    from nmt.translate import Translator

    tr = Translator(trained_run)
    shift = readouts(tr)["shift-att"]
    assert shift == (2 if tr.cfg.attention.type == "bahdanau" else 1)
    tf = Translator(tiny_transformer_checkpoint(trained_run))
    assert readouts(tf)["shift-att"] == 1
    src, tgt = ["a1 a2 a3 a4", "a5 a6"], ["a4 a3 a2 a1", "a6 a5"]
    att = forced_attention(tr, src, tgt, extra_steps=shift)
    links = model_alignments(tr, src, tgt)
    for k, t in enumerate(tgt):
        n = len(t.split())  # one piece per word in the tiny vocabulary
        rows = att[k][shift : shift + n, :-1]
        assert links.links["shift-att argmax"][k] == extract_argmax(rows)
        assert links.links["argmax"][k] == extract_argmax(att[k][:n, :-1])


# --- real data ---------------------------------------------------------------------------------


def test_forced_decoding_prepares_text_like_training(trained_run):
    """With data.tokenize=true the model sees `a1 , a2` for `a1,a2` (Translator.prepare), and
    the gold's word `a1,a2` still counts as one word."""
    from nmt.translate import Translator

    tr = Translator(trained_run)
    plain = forced_attention(tr, ["a1 , a2 a3"], ["a3 a2 , a1"])
    tr.cfg.data.tokenize = True
    src, tgt = ["a1,a2 a3"], ["a3 a2,a1"]
    tokenized = forced_attention(tr, src, tgt)
    np.testing.assert_allclose(tokenized[0], plain[0])
    links = model_alignments(tr, src, tgt, thresholds=(0.01,))
    assert links.mismatched == []
    assert {t for _, t in links.links["argmax"][0]} == {0, 1}  # one link per gold target word
    assert all(s < 2 and t < 2 for s, t in links.links["threshold>=0.01"][0])
    # pieces that neither spell the gold's words (NFKC made "..." of "…") nor match their
    # number: the sentence is left out, not misaligned
    left_out = model_alignments(tr, ["a1,… a2", "a1 a2"], ["a2 a1", "a2 a1"])
    argmax = left_out.links["argmax"]
    assert left_out.mismatched == [0] and argmax[0] == set() != argmax[1]


REPORT_KEYS = ("select", "report", "all")


def test_alignment_sweep_pairs_directions_and_chooses_on_the_first_lines(
    trained_run, tmp_path, monkeypatch
):
    """nmt.align.sweep: runs are paired by direction, the method is chosen on lines 1-100 and
    reported on 101-508, metrics.json gets the AER, the table names the chosen method."""
    import shutil

    from nmt.align.sweep import (
        find_pairs,
        format_markdown,
        score_system,
        system_name,
        unguided_name,
    )
    from nmt.align.sweep import main as sweep_main
    from nmt.checkpoint import load_checkpoint
    from nmt.rundir import hard_attention, mechanism_label

    sweep = tmp_path / "sweep"
    for name, (src, tgt), weight, extra in [
        ("a", ("de", "en"), 0.0, "[rwth/test]"),
        ("b", ("en", "de"), 0.0, "[rwth/test]"),
        ("c", ("de", "en"), 0.5, "[rwth/test]"),  # no en-de partner: left out
        ("d", ("de", "en"), 0.0, "[]"),  # the same system without the test text: its own row
        ("e", ("en", "de"), 0.0, "[]"),
    ]:
        run = sweep / name
        (run / ".hydra").mkdir(parents=True)
        (run / "checkpoints").mkdir()
        shutil.copy(trained_run / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt")
        (run / ".hydra" / "config.yaml").write_text(
            f"data: {{src_lang: {src}, tgt_lang: {tgt}, extra_train: {extra}}}\n"
            f"attention: {{type: luong_dot}}\nmodel: {{arch: rnn}}\n"
            f"trainer: {{guided_alignment: {{weight: {weight}}}}}\n"
        )
        (run / "metrics.json").write_text('{"interrupted": false}\n')
        step = load_checkpoint(run / "checkpoints" / "best.pt")["progress"]["step"]
        bleu = {"a": 1.5, "b": 0.7}.get(name, 0.0)  # dev BLEU at best.pt's step, not at 1
        (run / "valid.jsonl").write_text(
            json.dumps({"step": 1, "bleu": 9.0}) + "\n" + json.dumps({"step": step, "bleu": bleu})
        )
    cfg = {"model": {"arch": "transformer"}, "trainer": {}, "data": {"extra_train": ["t"]}}
    assert system_name(cfg) == "transformer"
    cfg["trainer"] = {"guided_alignment": {"weight": 2.0, "full_context": True}}
    assert system_name(cfg) == "transformer guided λ=2 full context"
    cfg["data"]["extra_train"] = []
    assert unguided_name(system_name(cfg)) == "transformer (test text unseen)"
    # sparse and hard variants of one mechanism get their own rows (the leaderboard's label)
    rnn = {"model": {"arch": "rnn"}, "data": {"extra_train": ["t"]}, "trainer": {}}
    rnn["attention"] = {"type": "local_p", "normalizer": "sparsemax", "hard": "none"}
    assert system_name(rnn) == "local_p+sparsemax"
    rnn["attention"] = {"type": "local_p", "normalizer": "softmax", "hard": "gumbel"}
    rnn["trainer"] = {"guided_alignment": {"weight": 2.0}}
    assert system_name(rnn) == "local_p+hard-gumbel guided λ=2"
    assert unguided_name(system_name(rnn)) == "local_p+hard-gumbel"
    rnn["attention"]["hard_inference"] = "soft"  # the leaderboard names the read-out it decodes
    assert mechanism_label(rnn) == "local_p+hard-gumbel(soft)"  # with; the sweep scores both
    assert system_name(rnn) == "local_p+hard-gumbel guided λ=2"
    assert hard_attention(rnn) == "gumbel" and hard_attention({**rnn, **cfg}) == "none"
    unseen = "luong_dot (test text unseen)"
    pairs = find_pairs(sweep)
    assert pairs == {"luong_dot": (sweep / "a", sweep / "b"), unseen: (sweep / "d", sweep / "e")}
    seen = {"luong_dot": pairs.pop("luong_dot")}
    # gold: 120 reversal pairs from the tiny task's test text, anti-diagonal links
    data = trained_run.parent / "data"
    src = (data / "test.src").read_text().splitlines()
    tgt = (data / "test.tgt").read_text().splitlines()
    src, tgt = (src * 3)[:120], (tgt * 3)[:120]
    rwth = tmp_path / "rwth"
    rwth.mkdir()
    (rwth / "test.de").write_text("".join(s + "\n" for s in src))
    (rwth / "test.en").write_text("".join(t + "\n" for t in tgt))
    gold = [" ".join(f"{i + 1}-{len(s.split()) - i}" for i in range(len(s.split()))) for s in src]
    (rwth / "alignment.talp").write_text("".join(g + "\n" for g in gold))
    row = score_system(rwth, *seen["luong_dot"], gold_order="src-tgt")
    assert row["select"]["sure"] == sum(len(s.split()) for s in src[:100])
    assert row["report"]["sure"] == sum(len(s.split()) for s in src[100:])
    assert 0.0 <= row["report"]["aer"] <= 1.0
    text = format_markdown({"luong_dot": row})
    assert row["method"] in text and "Luong et al. 2015" in text
    assert "sources" not in row  # an RNN has one attention
    # each way of reading (read-out x direction / symmetrisation / agreement) with its own
    # extraction chosen on 1-100; the system's method is the best of them
    from nmt.align.links import method_way
    from nmt.align.sweep import WAYS

    ways = row["ways"]
    one = ["", "reverse", "intersection", "grow-diag", "grow-diag-final", "agreement"]
    shifted = ["shift-att", "reverse shift-att"] + [f"shift-att {w}" for w in one[2:]]
    assert set(ways) == set(one + shifted) and len(WAYS) == len(one)
    assert all(method_way(w["method"]) == way for way, w in ways.items())
    assert min(w["select_aer"] for w in ways.values()) == row["select"]["aer"]
    assert ways[method_way(row["method"])]["aer"] == row["report"]["aer"]
    assert "## Each way of reading the attention" in text and "### Shift-Att read-out" in text
    grow = ways["grow-diag"]
    assert f"{100 * grow['aer']:.1f}" in text.split("### plain read-out")[1]
    assert row["dev_bleu"] == [1.5, 0.7]  # de→en, en→de
    guided = {**row, "dev_bleu": [1.9, 0.5]}  # guidance's BLEU cost, per direction
    table = format_markdown({"luong_dot": row, "luong_dot guided λ=2": guided})
    assert "| 1.90 / 0.50 | +0.40 / -0.20 |" in table and "| 1.50 / 0.70 |  |" in table
    assert "| 1.90 / 0.50 |  |" in format_markdown({"luong_dot guided λ=2": guided})
    # a Transformer: every layer's head average and every head, the best of them on 1-100
    for name in ("tf_a", "tf_b"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        shutil.copy(tiny_transformer_checkpoint(trained_run), tmp_path / name / "checkpoints")
        (tmp_path / name / "checkpoints" / "tiny_transformer.pt").rename(
            tmp_path / name / "checkpoints" / "best.pt"
        )
    import nmt.align.forced as forced

    decodings = []
    decode = forced.forced_attention_all
    monkeypatch.setattr(
        forced, "forced_attention_all", lambda *a, **k: decodings.append(1) or decode(*a, **k)
    )
    tf = score_system(rwth, tmp_path / "tf_a", tmp_path / "tf_b", gold_order="src-tgt")
    assert len(decodings) == 2  # each direction decoded once, read for all six sources
    assert list(tf["sources"]) == [
        "layer 0", "layer 0, head 0", "layer 0, head 1", "layer 1", "layer 1, head 0",
        "layer 1, head 1",
    ]  # fmt: skip
    best = min(tf["sources"].values(), key=lambda r: r["select"]["aer"])
    assert tf["method"] == best["method"] and tf["report"] == best["report"]
    assert all(r["method"].endswith(f"({label})") for label, r in tf["sources"].items())
    assert "## transformer: each layer and head" in format_markdown({"transformer": tf})
    # the shared decoding reads what nmt-align decoding on its own reads, source by source
    from nmt.align.run import attention_predictions, load_translator, orient, read_test_files
    from nmt.align.sweep import SELECT, _args, _score

    args = _args(rwth, tmp_path / "tf_a", tmp_path / "tf_b", 1, 1, "src-tgt", "best.pt")
    translator = load_translator(args.checkpoint, "cpu")
    test = orient(args, *read_test_files(args)[:3], translator)
    alone, excluded = attention_predictions(args, translator, test)
    method = tf["sources"]["layer 1, head 1"]["method"].removesuffix(" (layer 1, head 1)")
    assert (
        _score(alone, test, excluded, SELECT)[method] == tf["sources"]["layer 1, head 1"]["select"]
    )
    (tmp_path / "empty").mkdir()
    assert sweep_main([str(tmp_path / "empty"), "--no-eflomal"]) == 2
    # --checkpoint: another checkpoint of both runs; its own table, metrics.json untouched
    for run in seen["luong_dot"]:
        shutil.copy(run / "checkpoints" / "best.pt", run / "checkpoints" / "step_30.pt")
    argv = [str(sweep), "--no-eflomal", "--rwth", str(rwth), "--gold-order", "src-tgt"]
    argv += ["--checkpoint", "step_30.pt"]
    # an earlier table of this checkpoint: its eflomal line survives rescoring without eflomal
    eflomal = {"method": "eflomal (grow-diag-final)", **{k: row["report"] for k in REPORT_KEYS}}
    earlier = {"luong_dot": {"method": "stale"}, "eflomal (train + test text)": eflomal}
    (sweep / "alignment-step_30.json").write_text(json.dumps(earlier))
    assert sweep_main(argv) == 0
    table = json.loads((sweep / "alignment-step_30.json").read_text())
    assert table["eflomal (train + test text)"] == eflomal
    assert "eflomal (grow-diag-final)" in (sweep / "alignment-step_30.md").read_text()
    again = table["luong_dot"]
    assert again["method"] == row["method"] and not (sweep / "alignment.md").exists()
    assert "aer" not in json.loads((sweep / "a" / "metrics.json").read_text())
    assert sweep_main([*argv[:-1], "step_99.pt"]) == 2  # no such checkpoint: one error
    # --only: the matching systems rescored, the earlier table's other rows kept as they were
    other = {**again, "method": "other system's"}
    (sweep / "alignment-step_30.json").write_text(json.dumps({**table, "other": other}))
    assert sweep_main([*argv, "--only", "luong_d"]) == 0
    kept = json.loads((sweep / "alignment-step_30.json").read_text())
    assert kept["other"] == other and kept["luong_dot"]["method"] == row["method"]
    assert kept["eflomal (train + test text)"] == eflomal
    assert sweep_main([*argv, "--only", "bahdanau"]) == 2  # no such system: one error
    assert find_pairs(sweep, "step_30.pt") == seen  # a run still training: its step files
    (sweep / "a" / "metrics.json").unlink()
    assert find_pairs(sweep) == pairs and find_pairs(sweep, "step_30.pt") == seen
    # a hard-attention pair: its argmax row and, beside it, its soft read-out's row, which
    # for these weights (the soft pair's, wrapped) is the soft system's
    for name, run in (("h", seen["luong_dot"][0]), ("i", seen["luong_dot"][1])):
        shutil.copytree(run, sweep / name)
        hard_copy_checkpoint(run, sweep / name / "checkpoints" / "step_30.pt")
        config = (sweep / name / ".hydra" / "config.yaml").read_text()
        config = config.replace("{type: luong_dot}", "{type: luong_dot, hard: gumbel}")
        (sweep / name / ".hydra" / "config.yaml").write_text(config)
    assert sweep_main([*argv, "--only", "hard"]) == 0
    hard = json.loads((sweep / "alignment-step_30.json").read_text())
    soft_readout = hard["luong_dot+hard-gumbel (soft read-out)"]
    assert {k: soft_readout[k] for k in REPORT_KEYS} == {k: again[k] for k in REPORT_KEYS}
    one_hot = hard["luong_dot+hard-gumbel"]  # its contexts are one encoder state: other rows
    assert one_hot["select"] != soft_readout["select"] and "luong_dot" in hard  # others kept
    # dev BLEU was validated with the argmax read-out: not shown beside the soft one
    assert one_hot["dev_bleu"] == again["dev_bleu"] and soft_readout["dev_bleu"] == [None, None]
    # both directions read the soft distribution (the symmetrised methods combine them)
    from nmt.align.run import forced_pair

    args = _args(rwth, sweep / "h", sweep / "i", -1, None, "src-tgt", "step_30.pt", "soft")
    translator = load_translator(args.checkpoint, "cpu", "soft")
    pair = forced_pair(args, translator, orient(args, *read_test_files(args)[:3], translator))
    assert pair.reverse.cfg.attention.hard_inference == "soft"


def test_alignment_sweep_reads_every_transformer_head():
    """A Transformer is scored from each decoder layer's head average and from each head (a
    guided model trains one head); an RNN from its one attention."""
    from nmt.align.sweep import attention_sources
    from nmt.config import RNNConfig, TransformerConfig

    sources = attention_sources(TransformerConfig(dec_layers=2, heads=3))
    assert [(layer, head) for layer, head, _ in sources] == [
        (0, None), (0, 0), (0, 1), (0, 2), (1, None), (1, 0), (1, 1), (1, 2)
    ]  # fmt: skip
    assert sources[0][2] == " (layer 0)" and sources[-1][2] == " (layer 1, head 2)"
    assert attention_sources(RNNConfig()) == [(-1, None, "")]
