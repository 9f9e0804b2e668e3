"""The RNN encoder-decoder: shapes, every attention type end to end, learning synthetic tasks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.config import AttentionConfig, RNNConfig
from nmt.decoding import Lengths, beam_search, greedy
from nmt.loss import reinforce_loss
from nmt.models.hard_attention import HardAttention
from nmt.models.mechanisms import MECHANISMS
from nmt.models.rnn import RNNSeq2Seq

BOS, EOS, PAD = 2, 3, 0
V = 14  # 4 specials + 10 symbols


def make_batch(n: int, task: str, gen: torch.Generator, min_len: int = 3, max_len: int = 8):
    lens = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    seqs = [torch.randint(4, V, (int(k),), generator=gen) for k in lens]
    outs = [s.flip(0) if task == "reverse" else s for s in seqs]
    S, T = int(lens.max()) + 1, int(lens.max()) + 1
    src = torch.full((n, S), PAD)
    tgt_in, tgt_out = torch.full((n, T), PAD), torch.full((n, T), PAD)
    for i, (s, o) in enumerate(zip(seqs, outs)):
        src[i, : len(s)] = s
        src[i, len(s)] = EOS
        tgt_in[i, 0] = BOS
        tgt_in[i, 1 : len(o) + 1] = o
        tgt_out[i, : len(o)] = o
        tgt_out[i, len(o)] = EOS
    return src, lens + 1, tgt_in, tgt_out, outs


def model_for(
    att: str, task: str = "copy", normalizer: str = "softmax", hard: str = "none", **kw
) -> RNNSeq2Seq:
    cfg = RNNConfig(emb_size=32, enc_hidden=32, dec_hidden=64, dropout=0.0, **kw)
    window = 3 if task == "copy" else 8
    acfg = AttentionConfig(
        type=att, window=window, score="general", max_src_len=16, normalizer=normalizer, hard=hard
    )
    return RNNSeq2Seq(cfg, acfg, V, V)


@pytest.mark.parametrize("att", list(MECHANISMS))
@pytest.mark.parametrize("input_feed", [True, False])
def test_shapes_and_step_consistency(att, input_feed):
    """Teacher-forced forward equals step-by-step decode_step (same log-probs, same attention)."""
    torch.manual_seed(0)
    model = model_for(att, input_feed=input_feed).eval()
    src, src_lens, tgt_in, _, _ = make_batch(4, "copy", torch.Generator().manual_seed(1))
    logits, attn = model(src, src_lens, tgt_in, return_attention=True)
    B, T = tgt_in.shape
    assert logits.shape == (B, T, V) and attn.shape == (B, T, src.size(1))
    assert torch.all(attn[src.eq(PAD)[:, None, :].expand_as(attn)] == 0)
    memory = model.encode(src, src_lens)
    state = model.init_state(memory)
    for t in range(T):
        lp, w, state = model.decode_step(tgt_in[:, t], state, memory, t, need_attention=True)
        torch.testing.assert_close(lp, F.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w, attn[:, t], atol=1e-6, rtol=1e-5)


def train_task(
    att: str, task: str, steps: int = 260, normalizer: str = "softmax", hard: str = "none"
) -> RNNSeq2Seq:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = model_for(att, task, normalizer, hard)
    attention = model.decoder.attention
    if hard == "reinforce":  # the hard preset's soft-to-hard curriculum (see CASES)
        attention.soft_mix, attention.anneal = 1.0, 0.5
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / steps)  # linear to 0
    for step in range(steps):
        if isinstance(attention, HardAttention):
            attention.set_progress(step / steps)  # as the trainer does
        src, lens, tgt_in, tgt_out, _ = make_batch(64, task, gen)
        logits, _ = model(src, lens, tgt_in)
        nll = F.cross_entropy(
            logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, reduction="none"
        ).view(tgt_out.shape)  # (B, T), 0 on padding
        real = tgt_out != PAD
        loss = nll.sum()
        trace = attention.take_trace() if isinstance(attention, HardAttention) else None
        if trace is not None:  # hard attention trained by REINFORCE (as nmt.loss.batch_loss)
            loss = loss + reinforce_loss(attention, *trace, nll.detach(), real)
        loss = loss / real.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay.step()
    return model.eval()


# Sparse normalisers learn reversal only here (CI time: each case trains for ~10 s). On copy
# they pass too, except location attention: 90% exact match after 260 steps (97.5% sparsemax,
# 94% entmax15 after 400; measured 2026-12-02 at 2 threads): it ignores the keys and finds the
# diagonal from the decoder state alone, and a sparse normaliser gives its position scores
# gradient only inside the support.
# Hard attention (attention.hard): every mechanism with both estimators on reversal, copy for
# luong_general (CI time again). Gumbel trains pure hard; REINFORCE with the hard preset's
# curriculum (soft_mix 1 falling to 0 at half the steps): pure REINFORCE reaches 81% on
# reversal with luong_location in 260 steps, the curriculum 96.5% (measured 2026-12-02). REINFORCE,
# the noisier estimator, trains 400 steps: at 260 luong_general copied 94.5% on a 2-core AMD EPYC
# with AVX2 (97.5% at 400; same seeds, other kernels than AVX-512's; measured 2026-12-03).
CASES = [("softmax", "none", a, t) for a in MECHANISMS for t in ("copy", "reverse")]
CASES += [(n, "none", a, "reverse") for n in ("sparsemax", "entmax15") for a in MECHANISMS]
CASES += [("softmax", h, a, "reverse") for h in ("reinforce", "gumbel") for a in MECHANISMS]
CASES += [("softmax", h, a, "copy") for h in ("reinforce", "gumbel") for a in ("luong_general",)]


@pytest.mark.slow
@pytest.mark.parametrize("normalizer,hard,att,task", CASES)
def test_learns_synthetic_task(att, task, normalizer, hard):
    """>= 95% exact match (greedy) on held-out sequences; the copy attention is near-diagonal.
    Every mechanism with every normaliser (attention.normalizer) and hard attention."""
    steps = 400 if hard == "reinforce" else 260
    model = train_task(att, task, steps=steps, normalizer=normalizer, hard=hard)
    src, lens, _, _, outs = make_batch(200, task, torch.Generator().manual_seed(123))
    hyps = greedy(model, src, lens, Lengths(a=1.0, b=2), need_attention=True)
    exact = sum(h.tokens == o.tolist() for h, o in zip(hyps, outs)) / len(outs)
    assert exact >= 0.95, f"{att} ({normalizer}, hard={hard}) on {task}: exact match {exact:.2%}"
    if task == "copy":
        exact_diag = near_diag = total = 0
        for h, o in zip(hyps, outs):
            n = min(len(h.tokens), len(o))
            offset = (h.attention[:n].argmax(-1) - torch.arange(n)).abs()  # (n,)
            exact_diag += int((offset == 0).sum())
            near_diag += int((offset <= 1).sum())
            total += n
        # a bidirectional encoder state j-1 also carries word j, so allow +-1 for "near"
        assert near_diag / total >= 0.95, (
            f"{att}: {near_diag / total:.2%} of argmax within 1 of diagonal"
        )
        assert exact_diag / total >= 0.75, (
            f"{att}: {exact_diag / total:.2%} of argmax on the diagonal"
        )


def test_beam_one_equals_greedy():
    model = train_task("luong_general", "reverse", steps=60)
    src, lens, _, _, _ = make_batch(16, "reverse", torch.Generator().manual_seed(5))
    g = greedy(model, src, lens, need_attention=True)
    b = beam_search(model, src, lens, beam=1, length_penalty=0.0, need_attention=True)
    for x, y in zip(g, b):
        assert x.tokens == y.tokens
        assert x.score == pytest.approx(y.score, abs=1e-4)
        torch.testing.assert_close(x.attention, y.attention)


def test_beam_search_attention_follows_hypotheses():
    """Beam search attention rows match a teacher-forced pass over the chosen hypothesis."""
    model = train_task("bahdanau", "reverse", steps=60)
    src, lens, _, _, _ = make_batch(6, "reverse", torch.Generator().manual_seed(7))
    hyps = beam_search(model, src, lens, beam=4, need_attention=True)
    for i, h in enumerate(hyps):
        if not h.tokens:
            continue
        n = int(lens[i])
        tgt_in = torch.tensor([[BOS, *h.tokens]])
        _, attn = model(src[i : i + 1, :n], lens[i : i + 1], tgt_in, return_attention=True)
        torch.testing.assert_close(h.attention, attn[0, : len(h.tokens)], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("att", ["bahdanau", "luong_general"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("input_feed", [True, False])
def test_gru_and_two_layers_match_step_by_step(att, cell, input_feed):
    """The hand-written step loop shares nn.LSTM/GRU weights: fused and stepwise paths agree."""
    torch.manual_seed(0)
    model = model_for(att, cell=cell, dec_layers=2, enc_layers=2, input_feed=input_feed).eval()
    src, src_lens, tgt_in, _, _ = make_batch(3, "copy", torch.Generator().manual_seed(2))
    logits, _ = model(src, src_lens, tgt_in)
    memory = model.encode(src, src_lens)
    state = model.init_state(memory)
    for t in range(tgt_in.size(1)):
        lp, _, state = model.decode_step(tgt_in[:, t], state, memory, t)
        torch.testing.assert_close(lp, F.log_softmax(logits[:, t], -1), atol=1e-5, rtol=1e-5)
