"""Guided alignment training: eflomal links of the training corpus at subword level (cached),
the loss, and tiny runs on reversal where the true links are known (nmt.data.guided, nmt.loss).

eflomal has no seed option, so the runs here use a deterministic stand-in aligner that returns
the reversal's true links (conftest's `stand_in_eflomal`); the real eflomal is exercised in
test_align_eflomal.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose, tiny_overrides

log = logging.getLogger("test")


def test_word_links_become_links_between_all_their_pieces():
    from nmt.data.guided import piece_links

    # source pieces ▁ein ▁haus chen (words 0 1 1), target ▁a ▁little ▁house (words 0 1 2)
    flat = piece_links({(1, 2), (0, 0)}, [0, 1, 1], [0, 1, 2])
    assert flat.reshape(-1, 2).tolist() == [[0, 0], [1, 2], [2, 2]]
    assert piece_links(set(), [0], [0]).size == 0


def test_guided_loss_is_the_cross_entropy_to_uniform_links():
    from nmt.loss import guided_alignment_loss

    gold = torch.zeros(1, 3, 4)
    gold[0, 0, 1] = 1.0  # target piece 0 -> source piece 1
    gold[0, 1, 2] = gold[0, 1, 3] = 1.0  # target piece 1 -> source pieces 2 and 3
    uniform = torch.full((1, 3, 4), 0.25, requires_grad=True)
    loss = guided_alignment_loss(uniform, gold)
    assert loss.item() == pytest.approx(2 * np.log(4))  # row 2 has no links: not counted
    loss.backward()
    assert uniform.grad[0, 2].abs().sum() == 0 and uniform.grad[0, 0, 1] < 0
    perfect = torch.tensor([[[0, 1, 0, 0], [0, 0, 0.5, 0.5], [1, 0, 0, 0]]], dtype=torch.float)
    assert guided_alignment_loss(perfect, gold).item() == pytest.approx(2 * np.log(2) / 2)


def _encoded(tmp: Path, lines: list[tuple[str, str]]):
    """A tiny joint SentencePiece model over `lines` and the encoded pairs."""
    from nmt.data.arrays import TokenArray
    from nmt.data.tokenizer import Tokenizer

    src, tgt = [a for a, _ in lines], [b for _, b in lines]
    tok = Tokenizer.train(src * 20, tgt * 20, "bpe", 40, True, tmp, max_lines=1000, seed=1)
    return (
        tok,
        TokenArray.from_lists(tok.encode_src(src)),
        TokenArray.from_lists(tok.encode_tgt(tgt)),
    )


def test_training_links_map_words_to_pieces_and_are_cached(tmp_path, stand_in_eflomal, caplog):
    from nmt.data.guided import training_links
    from nmt.pieces import piece_word_ids

    lines = [("das kleine haus", "house little the"), ("ein baumhaus", "treehouse a")] * 3
    tok, src, tgt = _encoded(tmp_path, lines)
    with caplog.at_level(logging.INFO):
        links = training_links(src, tgt, tok, tmp_path / "cache", "intersection", log)
    assert stand_in_eflomal.calls == 1 and len(links) == len(lines)
    assert "6 of 6 training pairs have links" in caplog.text
    for i in range(len(lines)):
        s_word = piece_word_ids(tok.src_pieces_from_ids(src[i]))
        t_word = piece_word_ids(tok.tgt_pieces_from_ids(tgt[i]))
        n = max(s_word) + 1
        expected = {(a, b) for a in range(len(s_word)) for b in range(len(t_word))}
        expected = {(a, b) for a, b in expected if t_word[b] == n - 1 - s_word[a]}
        assert {tuple(p) for p in links[i].reshape(-1, 2).tolist()} == expected
    # the same ids: reused; other ids (a changed corpus) or another method: aligned again
    again = training_links(src, tgt, tok, tmp_path / "cache", "intersection", log)
    assert stand_in_eflomal.calls == 1 and again.tolist() == links.tolist()
    _, src2, tgt2 = _encoded(tmp_path / "b", lines[:4])
    training_links(src2, tgt2, tok, tmp_path / "cache", "intersection", log)
    assert stand_in_eflomal.calls == 2
    union = training_links(src, tgt, tok, tmp_path / "cache", "union", log)
    assert stand_in_eflomal.calls == 3
    assert union.lengths.sum() > links.lengths.sum()  # the reverse's spurious links


def _reversal_aer(run: Path) -> float:
    """AER of the trained run's argmax attention on its test pairs against the reversal's
    true links (the anti-diagonal)."""
    from nmt.align import model_alignments, score_alignments
    from nmt.translate import Translator

    data = run.parent / "data"
    src = (data / "test.src").read_text().splitlines()[:40]
    tgt = (data / "test.tgt").read_text().splitlines()[:40]
    gold = [{(i, len(s.split()) - 1 - i) for i in range(len(s.split()))} for s in src]
    links = model_alignments(Translator(run), src, tgt).links["argmax"]
    return score_alignments(links, gold, gold)["aer"]


@pytest.mark.slow
def test_guided_training_lowers_aer_on_reversal(tmp_path, stand_in_eflomal):
    """The same tiny RNN (Luong dot, 30 steps) with and without guided alignment toward the
    reversal's true links: the guided one aligns (much) better. progress.jsonl logs the
    cross-entropy as `loss` in both runs and the guided loss beside it, falling."""
    from nmt.pipeline import run

    aer, logged = {}, {}
    for weight in (0.0, 1.0):
        over = tiny_overrides(
            tmp_path / str(weight),
            attention="luong_dot",
            **{"trainer.guided_alignment.weight": str(weight)},
        )
        run(compose(over), tmp_path / str(weight) / "run")
        aer[weight] = _reversal_aer(tmp_path / str(weight) / "run")
        progress = tmp_path / str(weight) / "run" / "progress.jsonl"
        logged[weight] = [json.loads(line) for line in progress.open()]
    assert stand_in_eflomal.calls == 1
    assert aer[1.0] < aer[0.0] - 0.2 and aer[1.0] < 0.2, aer
    assert not any("guided_loss" in r for r in logged[0.0])
    guided = [r["guided_loss"] for r in logged[1.0]]
    assert len(guided) == len(logged[1.0]) and guided[-1] < 0.5 * guided[0], guided
    # the same first batch and weights: the first step's cross-entropy does not include the
    # guided term (it would be larger by guided[0])
    assert logged[1.0][0]["loss"] == pytest.approx(logged[0.0][0]["loss"], rel=1e-5)


def test_guided_run_resumes_bit_exactly(tmp_path, stand_in_eflomal):
    """An interrupted guided run (Ctrl-C during step 10), resumed from last.pt, logs the same
    cross-entropy and guided loss, bit for bit, as the same run straight through: the cached
    links are read back and every batch meets its own links again."""
    from conftest import cut_and_resume

    from nmt.config import to_dataclass
    from nmt.trainer import Trainer

    over = tiny_overrides(
        tmp_path,
        attention="local_p",  # a window: links outside it are masked, resumed alike
        **{"trainer.guided_alignment.weight": "1.0", "trainer.max_steps": "16"},
    )
    threads = torch.get_num_threads()
    try:
        cfg = to_dataclass(compose(over))
        Trainer(cfg, tmp_path / "whole").fit()
        cut_and_resume(cfg, tmp_path / "cut")
    finally:
        torch.set_num_threads(threads)
    runs = {
        name: {r["step"]: r for r in map(json.loads, (tmp_path / name / "progress.jsonl").open())}
        for name in ("whole", "cut")
    }
    assert sorted(runs["whole"]) == sorted(runs["cut"]) == list(range(1, 17))
    assert stand_in_eflomal.calls == 2  # once per run folder: the resumed trainer reads the cache
    for step in range(11, 17):
        for key in ("loss", "guided_loss"):
            assert runs["cut"][step][key] == runs["whole"][step][key], (step, key)


@pytest.mark.parametrize(
    "arch",
    [
        "bahdanau",
        "luong_dot",
        "luong_general",
        "luong_concat",
        "luong_location",
        "local_m",
        "local_p",
        "transformer",
        "transformer full context",
    ],
)
def test_guided_loss_trains_every_mechanism_toward_the_links(arch):
    """A few Adam steps on the guided loss alone move each mechanism's attention (the RNN's, or
    layer -2 head 0 of the Transformer, in the translation pass or in the full-context pass)
    toward the links: local windows and padding included."""
    from nmt.config import to_dataclass
    from nmt.data.arrays import TokenArray
    from nmt.data.batching import collate
    from nmt.loss import Guide, batch_loss
    from nmt.models import build_model
    from nmt.runtime import resolve_precision

    transformer = arch.startswith("transformer")
    over = tiny_overrides(Path("/nonexistent"), model="transformer" if transformer else "rnn")
    if not transformer:
        over.append(f"attention={arch}")
    else:
        over += ["model.d_model=32", "model.heads=2", "model.ff_size=64", "model.enc_layers=2"]
        over += ["model.dec_layers=2"]
    cfg = to_dataclass(compose(over))
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.attention, 20, 20)
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 20, n).tolist() for n in (7, 4, 6)]
    tgt = [list(reversed(s)) for s in src]
    links = TokenArray.from_lists(
        [[v for i in range(len(s)) for v in (i, len(s) - 1 - i)] for s in src]
    )
    full = {"full_context_layer": -2} if arch.endswith("full context") else {}
    guide = Guide(links, 1.0, layer=-2, head=0, model_kwargs=full)
    batch = collate(src, tgt, [0, 1, 2])
    fp32 = resolve_precision("fp32", torch.device("cpu"), "test")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    if full:  # the full-context pass's attention is what is trained, not the causal pass's
        causal = Guide(links, 1.0, layer=-2, head=0)
        args = (model, model.output_layer, batch, 0.0, torch.device("cpu"), fp32)
        assert batch_loss(*args, guide).guided.item() != pytest.approx(
            batch_loss(*args, causal).guided.item(), rel=1e-3
        )
    for _ in range(15):
        ce = batch_loss(model, model.output_layer, batch, 0.0, torch.device("cpu"), fp32)
        terms = batch_loss(model, model.output_layer, batch, 0.0, torch.device("cpu"), fp32, guide)
        assert ce.guided is None and torch.allclose(terms.cross_entropy, ce.cross_entropy)
        losses.append(terms.guided.item())
        optimizer.zero_grad()
        terms.guided.backward()
        optimizer.step()
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses


def test_guided_alignment_config_errors():
    from nmt.config import ConfigError, to_dataclass

    over = tiny_overrides(Path("/nonexistent"), model="transformer")
    with pytest.raises(ConfigError, match="trainer.guided_alignment.layer=5 is out of range"):
        to_dataclass(
            compose(
                [*over, "trainer.guided_alignment.weight=0.1", "trainer.guided_alignment.layer=5"]
            )
        )
    with pytest.raises(ConfigError, match="trainer.guided_alignment.weight=-1"):
        to_dataclass(compose([*over, "trainer.guided_alignment.weight=-1"]))
    with pytest.raises(ConfigError, match="trainer.guided_alignment.symmetrise='gdf'"):
        to_dataclass(compose([*over, "trainer.guided_alignment.symmetrise=gdf"]))
    rnn = tiny_overrides(Path("/nonexistent"), model="rnn")
    with pytest.raises(ConfigError, match="full_context=true needs model=transformer"):
        to_dataclass(compose([*rnn, "trainer.guided_alignment.full_context=true"]))
    with pytest.raises(ConfigError, match="weight=0.5 with attention.hard=reinforce: hard"):
        to_dataclass(
            compose([*rnn, "trainer.guided_alignment.weight=0.5", "attention.hard=reinforce"])
        )


def test_full_context_pass_sees_the_whole_target_and_ignores_padding():
    """Garg et al.'s full-context pass: row t of the guided layer's attention changes when a
    later target word does (the translation pass's does not), padding positions change
    nothing, and only that layer of the returned attention is replaced; the logits are the
    translation pass's."""
    from nmt.config import TransformerConfig
    from nmt.data.batching import collate
    from nmt.models.transformer import Transformer

    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=32, heads=2, ff_size=64, enc_layers=1, dec_layers=3)
    model = Transformer(cfg, 20, 20).eval()
    src, tgt = [5, 6, 7, 8], [9, 10, 11, 12, 13]
    other = [*tgt[:3], 19, tgt[4]]  # the word at piece 3 differs (input position 4)

    def attention(targets, full):
        batch = collate([src] * len(targets), targets, list(range(len(targets))))
        with torch.no_grad():
            logits, att = model(
                batch.src, batch.src_lens, batch.tgt_in, True, True, 1 if full else None
            )
        return logits, att  # (B, T, L, h, S)

    _, masked = attention([tgt, other], full=False)
    logits, full = attention([tgt, other], full=True)
    assert torch.allclose(masked[0, :4], masked[1, :4], atol=1e-6)  # rows 0-3 cannot see piece 3
    assert not torch.allclose(full[0, 0, 1], full[1, 0, 1])  # row 0 of the full pass can
    assert torch.equal(full[:, :, [0, 2]], masked[:, :, [0, 2]])  # other layers untouched
    assert torch.equal(logits, attention([tgt, other], full=False)[0])
    _, padded = attention([tgt, [*tgt, 4, 4, 4]], full=True)  # tgt padded by 3 positions
    assert torch.allclose(padded[0, :6], full[0], atol=1e-6)
    assert torch.allclose(padded[0, :, 1].sum(-1), torch.ones(9, 2))
