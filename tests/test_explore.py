"""The attention explorer (nmt.explore, report.html, nmt-explore) on real tiny trained runs: what
the page holds, read back from the written file. test_browser.py drives the same pages in
headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmt.explore import System, dequantise, explorer_data, main, quantise
from nmt.explore.page import read_page_data, render, write_page


def _translator(run: Path, precision: str | None = None):
    from nmt.translate import Translator

    return Translator(run / "checkpoints" / "best.pt", precision=precision)


def _test_lines(root: Path, n: int) -> tuple[list[str], list[str]]:
    data = root.parent / "data"
    src = (data / "test.src").read_text().splitlines()[:n]
    tgt = (data / "test.tgt").read_text().splitlines()[:n]
    return src, tgt


def reversal_gold(sources: list[str]):
    """The known alignment of the reversal task: source word i <-> target word n-1-i (sure)."""
    from nmt.align.gold import GoldAlignment

    sure = [{(i, len(s.split()) - 1 - i) for i in range(len(s.split()))} for s in sources]
    return GoldAlignment(sure, [set(x) for x in sure])


# --- storage ---------------------------------------------------------------------------------
def test_quantise_round_trip_is_within_half_a_level():
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(7), size=5)  # (5, 7) rows sum to 1
    back = dequantise(quantise(w), w.shape)
    assert back.shape == w.shape
    assert np.abs(back - w).max() <= 0.5 / 255 + 1e-7
    assert quantise(np.array([-0.1, 1.2])) == bytes([0, 255])  # clipped


def test_page_packs_bytes_and_reads_back(tmp_path):
    data = {
        "title": "t <b>",
        "explorer": {"a": b"\x00\x01\xff", "b": [b"xyz", {"c": "</script><script>alert(1)"}]},
    }
    html = render(data)
    assert "</script><script>alert" not in html  # text is packed, it cannot end the element
    assert "<title>t &lt;b&gt;</title>" in html
    path = write_page(data, tmp_path / "p.html")
    plain, tail = read_page_data(path)
    a, b = plain["explorer"]["a"]["$bin"], plain["explorer"]["b"][0]["$bin"]
    assert tail[a[0] : a[0] + a[1]] == b"\x00\x01\xff"
    assert tail[b[0] : b[0] + b[1]] == b"xyz"
    assert plain["explorer"]["b"][1]["c"] == "</script><script>alert(1)"


def test_page_is_self_contained(tmp_path):
    html = render({"title": "x", "explorer": None})
    # nothing is fetched: no external scripts, styles, images or fonts
    for needle in ("<script src", "<link", "<img", "@import", "url(", "https://"):
        assert needle not in html
    assert html.count("http://") == html.count('"http://www.w3.org/2000/svg"')  # a namespace


# --- the explorer's data -----------------------------------------------------------------------
def test_explorer_data_holds_every_systems_attention(explore_runs):
    from sacrebleu import sentence_chrf

    from nmt.align import forced_attention

    rnn, tf = explore_runs / "attention=luong_general", explore_runs / "model=transformer"
    sources, refs = _test_lines(explore_runs, 8)
    systems = [System("rnn", _translator(rnn)), System("tf", _translator(tf))]
    data = explorer_data(systems, sources, refs)
    assert data["sources"] == sources and data["references"] == refs
    for sys_data, system in zip(data["systems"], systems):
        tr = system.translator
        hyps = [e["hyp"] for e in sys_data["sentences"]]
        assert hyps == tr.translate(sources)[0]  # translated with the checkpoint's settings
        forced = forced_attention(tr, sources, hyps)  # head average of the last layer
        for i, e in enumerate(sys_data["sentences"]):
            T, S = len(e["tgt"]["pieces"]), len(e["src"]["pieces"])
            assert e["src"]["pieces"][-1] == e["tgt"]["pieces"][-1] == "</s>"
            assert e["chrf"] == pytest.approx(sentence_chrf(hyps[i], [refs[i]]).score, abs=0.01)
            if sys_data["arch"] == "transformer":
                L, H = sys_data["layers"], sys_data["heads"]
                assert (L, H) == (2, 2)
                a = dequantise(sys_data["att"][e["off"] : e["off"] + L * H * T * S], (L, H, T, S))
                last = a[-1].mean(axis=0)
            else:
                last = dequantise(sys_data["att"][e["off"] : e["off"] + T * S], (T, S))
            np.testing.assert_allclose(last, forced[i], atol=1 / 255)
            np.testing.assert_allclose(last.sum(axis=1), 1.0, atol=S / 255)
    chrf = np.array([[e["chrf"] for e in s["sentences"]] for s in data["systems"]])
    np.testing.assert_allclose(data["spread"], chrf.max(axis=0) - chrf.min(axis=0), atol=0.011)


def test_forced_attention_is_the_searchs_own_attention(explore_runs):
    """The page reads attention by forced decoding of the hypothesis; for greedy search that is
    exactly the attention the search used (same prefix, deterministic decoder). In fp32: under
    bf16 (precision auto on a CPU with avx512_bf16) the fused forced pass and the step loop
    round differently (measured: up to 7e-3 apart)."""
    from nmt.align.forced import forced_attention_all

    tr = _translator(explore_runs / "attention=luong_general", precision="fp32")
    sources, _ = _test_lines(explore_runs, 6)
    hyps_text, hyps = tr.translate(sources, beam=1, need_attention=True)
    forced = forced_attention_all(tr, sources, hyps_text)
    for h, f in zip(hyps, forced):
        searched = h.attention.float().numpy()  # (T, S + 1): the search keeps no EOS row
        assert f.shape == (len(h.tokens) + 1, searched.shape[1])  # forced: + the EOS row
        np.testing.assert_allclose(f[:-1], searched, atol=1e-4)


def test_given_hypotheses_and_gold_view(explore_runs):
    from nmt.align.links import score_alignments

    run = explore_runs / "attention=luong_general"
    sources, refs = _test_lines(explore_runs, 6)
    gold = reversal_gold(sources)
    hyps = list(refs)
    hyps[0] = ""  # an empty hypothesis: one row (</s>)
    data = explorer_data([System("r", _translator(run), hyps)], sources, refs, gold, "argmax")
    (s,) = data["systems"]
    assert [e["hyp"] for e in s["sentences"]] == hyps
    assert s["sentences"][0]["tgt"]["pieces"] == ["</s>"]
    assert data["gold"]["sure"][0] == sorted(gold.sure[0]) and data["gold"]["possible"][0] == []
    links = []
    for i, e in enumerate(s["gold"]):
        T, S = len(refs[i].split()), len(sources[i].split())
        w = dequantise(s["gatt"][e["off"] : e["off"] + T * S], (T, S))
        assert {(int(c), t) for t, c in enumerate(w.argmax(axis=1))} == {
            tuple(x) for x in e["links"]
        }
        A, G = {tuple(x) for x in e["links"]}, gold.sure[i]
        assert e["aer"] == pytest.approx(1 - 2 * len(A & G) / (len(A) + len(G)), abs=1e-4)
        links.append(A)
    assert s["aer"] == pytest.approx(
        score_alignments(links, gold.sure, gold.possible)["aer"], abs=1e-4
    )
    # trained 150 steps on reversal: the argmax read-out finds most of the reversed diagonal
    assert s["aer"] < 0.5


def test_explorer_data_errors(explore_runs):
    from nmt.align import AlignError

    tr = _translator(explore_runs / "attention=luong_general")
    sources, refs = _test_lines(explore_runs, 3)
    with pytest.raises(AlignError, match="no systems"):
        explorer_data([], sources, refs)
    with pytest.raises(AlignError, match="3 source but 2 reference"):
        explorer_data([System("a", tr)], sources, refs[:2])
    with pytest.raises(AlignError, match="2 hypotheses for 3 sources"):
        explorer_data([System("a", tr, ["x", "y"])], sources, refs)
    with pytest.raises(AlignError, match="unknown alignment method 'nope'"):
        explorer_data([System("a", tr)], sources, refs, reversal_gold(sources), "nope")
    gold = reversal_gold(sources)
    gold.sure[1].add((40, 0))
    gold.possible[1].add((40, 0))
    with pytest.raises(AlignError, match="line 2"):
        explorer_data([System("a", tr)], sources, refs, gold)


# --- nmt-explore -------------------------------------------------------------------------------
def _files(root: Path, tmp: Path, n: int = 5) -> tuple[Path, Path, Path]:
    sources, refs = _test_lines(root, n)
    paths = tmp / "in.src", tmp / "in.ref", tmp / "gold.talp"
    gold = reversal_gold(sources)
    talp = [" ".join(f"{s + 1}-{t + 1}" for s, t in sorted(links)) for links in gold.sure]
    for p, lines in zip(paths, (sources, refs, talp)):
        p.write_text("".join(line + "\n" for line in lines))
    return paths


def test_nmt_explore_writes_the_page(explore_runs, tmp_path, capsys):
    src, ref, gold = _files(explore_runs, tmp_path)
    out = tmp_path / "page.html"
    runs = [str(explore_runs / "attention=luong_general"), str(explore_runs / "model=transformer")]
    args = ["--src", str(src), "--ref", str(ref), "--gold", str(gold), "-o", str(out)]
    assert main([*runs, *args, "--lines", "2-4"]) == 0
    assert "wrote" in capsys.readouterr().err
    data, tail = read_page_data(out)
    x = data["explorer"]
    assert x["sources"] == src.read_text().splitlines()[1:4]
    names = [s["name"] for s in x["systems"]]
    assert names == ["luong_general (attention=luong_general)", "transformer (model=transformer)"]
    assert [s["arch"] for s in x["systems"]] == ["rnn", "transformer"]
    assert all(len(s["gold"]) == 3 and s["gatt"]["$bin"][1] > 0 for s in x["systems"])
    assert [s["method"] for s in x["systems"]] == ["argmax", "argmax"]
    assert len(tail) == sum(s["att"]["$bin"][1] + s["gatt"]["$bin"][1] for s in x["systems"])


@pytest.mark.parametrize(
    "change,message",
    [
        ({"--src": "missing"}, "--src {tmp}/missing: file not found"),
        ({"--ref": None}, "--gold needs --ref"),
        ({"--gold": "bad"}, "--gold {tmp}/bad: line 2: bad link 'x-1'"),
        ({"--names": "a,b,c"}, "--names gives 3 names for 1 checkpoints"),
        ({"--lines": "9-12"}, "--lines 9-12: {tmp}/in.src has 5 lines"),
        ({"--method": "nope"}, "unknown alignment method 'nope'"),
    ],
)
def test_nmt_explore_errors_are_one_line(explore_runs, tmp_path, capsys, change, message):
    src, ref, gold = _files(explore_runs, tmp_path)
    (tmp_path / "bad").write_text("1-1\nx-1\n")
    args = {"--src": str(src), "--ref": str(ref), "--gold": str(gold), "-o": str(tmp_path / "p")}
    for k, v in change.items():
        if v is None:
            del args[k]
        else:
            args[k] = v if k != "--src" and k != "--gold" else str(tmp_path / v)
    argv = [str(explore_runs / "attention=luong_general")]
    argv += [x for kv in args.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nmt-explore: error: ")
    assert message.format(tmp=tmp_path) in err
    assert not (tmp_path / "p").exists()  # nothing half-written


# --- report.html -------------------------------------------------------------------------------
def test_report_html(explore_runs, tmp_path):
    from nmt.report import make_report

    out = tmp_path / "report"
    result = make_report([explore_runs], out, heatmaps=False, resamples=20)
    assert result["html"] == out / "report.html"
    data, _ = read_page_data(out / "report.html")
    rows = data["leaderboard"]["rows"]
    assert sorted(r["system"] for r in rows) == ["luong_general", "transformer"]
    for r in rows:
        assert r["bleu_lo"] <= r["test_bleu"] <= r["bleu_hi"]
        assert r["details"] in {d["id"] for d in data["details"]}
    assert sum(r["best"] for r in rows) == 1
    assert {c["id"] for c in data["charts"]} == {
        "bleu_by_length",
        "dev_bleu_vs_time",
        "attention_stats",
    }
    x = data["explorer"]
    n_test = len((explore_runs.parent / "data" / "test.src").read_text().splitlines())
    assert len(x["sources"]) == n_test
    for s in x["systems"]:  # each system's own test.hyp
        run = next(explore_runs.glob(f"*{s['name'].split()[0]}*"))
        assert [e["hyp"] for e in s["sentences"]] == (run / "test.hyp").read_text().splitlines()
    # limited, and without the explorer
    make_report([explore_runs], out, heatmaps=False, resamples=0, explore_sentences=4)
    assert len(read_page_data(out / "report.html")[0]["explorer"]["sources"]) == 4
    make_report([explore_runs], out, heatmaps=False, resamples=0, explore=False)
    assert read_page_data(out / "report.html")[0]["explorer"] is None


def test_report_html_with_gold(explore_runs, tmp_path):
    from nmt.report import main as report_main

    src, ref, gold = _files(explore_runs, tmp_path)
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "test.src").write_text(src.read_text())
    (folder / "test.tgt").write_text(ref.read_text())
    (folder / "alignment.talp").write_text(gold.read_text())
    out = tmp_path / "report"
    argv = [str(explore_runs), "-o", str(out), "--no-heatmaps", "--resamples", "0"]
    assert report_main([*argv, "--gold", str(folder), "--gold-order", "src-tgt"]) == 0
    x = read_page_data(out / "report.html")[0]["explorer"]
    assert x["sources"] == src.read_text().splitlines()
    assert all(len(s["gold"]) == 5 for s in x["systems"])
    assert report_main([*argv, "--gold", str(tmp_path / "nope")]) == 2
    (folder / "alignment.talp").unlink()
    assert report_main([*argv, "--gold", str(folder)]) == 2


def test_report_without_html(explore_runs, tmp_path):
    from nmt.report import make_report

    result = make_report([explore_runs], tmp_path, heatmaps=False, resamples=0, html=False)
    assert result["html"] is None and not (tmp_path / "report.html").exists()


def test_report_gold_view_uses_the_read_out_the_alignment_sweep_chose():
    from nmt.report.explorer import gold_method

    assert gold_method({"aer_method": "shift-att grow-diag"}) == "shift-att argmax"
    assert gold_method({"aer_method": "threshold>=0.3"}) == "argmax"
    assert gold_method({"aer_method": "reverse shift-att argmax"}) == "shift-att argmax"
    assert gold_method({"aer_method": "intersection of threshold>=0.2"}) == "argmax"
    assert gold_method({"test_bleu": 1.0}) is None and gold_method(None) is None
