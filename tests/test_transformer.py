"""Transformer: shapes, masks, incremental decoding, attention weights, tying, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_native_bf16

from nmt.config import TransformerConfig
from nmt.models.transformer import Transformer
from nmt.optim import inverse_sqrt_lr

PAD, BOS, EOS = 0, 2, 3
V = 14  # ids 4..13 are the symbols


def tiny_cfg(**kw) -> TransformerConfig:
    base = dict(
        d_model=32,
        heads=2,
        ff_size=64,
        enc_layers=2,
        dec_layers=2,
        dropout=0.0,
        attention_dropout=0.0,
    )
    base.update(kw)
    return TransformerConfig(**base)


def make_model(seed: int = 0, **kw) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(tiny_cfg(**kw), V, V).eval()


def random_batch(n: int, gen: torch.Generator, min_len: int = 3, max_len: int = 8):
    """Random symbol strings (ids >= 4), right-padded; target = BOS reversed EOS."""
    lens = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    S = int(lens.max())
    src = torch.full((n, S), PAD, dtype=torch.long)
    tgt = torch.full((n, S + 2), PAD, dtype=torch.long)
    for i, length in enumerate(lens.tolist()):
        seq = torch.randint(4, V, (length,), generator=gen)
        src[i, :length] = seq
        tgt[i, 0] = BOS
        tgt[i, 1 : length + 1] = seq.flip(0)
        tgt[i, length + 1] = EOS
    return src, lens, tgt


def batch_with_lengths(lens: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    S = max(lens)
    src = torch.full((len(lens), S), PAD, dtype=torch.long)
    for i, length in enumerate(lens):
        src[i, :length] = torch.randint(4, V, (length,), generator=gen)
    tgt = torch.randint(4, V, (len(lens), 6), generator=gen)
    tgt[:, 0] = BOS
    return src, torch.tensor(lens), tgt


def incremental_log_probs(model, src, lens, tgt_in, need_attention=False):
    """Feed tgt_in one position at a time through decode_step -> (B, T, V), [(B, L, h, S)]."""
    memory = model.encode(src, lens)
    state = model.init_state(memory)
    outs, atts = [], []
    for t in range(tgt_in.size(1)):
        lp, att, state = model.decode_step(tgt_in[:, t], state, memory, t, need_attention)
        outs.append(lp)
        atts.append(att)
    return torch.stack(outs, 1), atts


def greedy(model, src, lens, max_len: int) -> torch.Tensor:
    memory = model.encode(src, lens)
    state = model.init_state(memory)
    y = torch.full((src.size(0),), BOS, dtype=torch.long)
    out = []
    for t in range(max_len):
        lp, _, state = model.decode_step(y, state, memory, t)
        y = lp.argmax(-1)
        out.append(y)
    return torch.stack(out, 1)


def greedy_full(model, src, lens, max_len: int) -> torch.Tensor:
    """Greedy by re-running forward on the whole prefix (no cache)."""
    ys = torch.full((src.size(0), 1), BOS, dtype=torch.long)
    for _ in range(max_len):
        logits, _ = model(src, lens, ys)
        ys = torch.cat([ys, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ys[:, 1:]


@pytest.mark.parametrize("pre_norm", [True, False])
def test_shapes(pre_norm):
    model = make_model(pre_norm=pre_norm)
    src, lens, tgt = batch_with_lengths([5, 3, 7])
    logits, att = model(src, lens, tgt)
    assert logits.shape == (3, 6, V)
    assert att is None
    logits, att = model(src, lens, tgt, return_attention=True)
    assert att.shape == (3, 6, 2, 2, 7) and att.dtype == torch.float32
    memory = model.encode(src, lens)
    assert memory["enc_out"].shape == (3, 7, 32)
    assert memory["src_mask"].dtype == torch.bool and memory["src_mask"].sum().item() == 15
    assert memory["ck0"].shape == memory["cv1"].shape == (3, 2, 7, 16)
    state = model.init_state(memory)
    assert set(state) == {"k0", "v0", "k1", "v1"} and state["k0"].shape == (3, 2, 0, 16)
    lp, att, new_state = model.decode_step(tgt[:, 0], state, memory, 0, need_attention=True)
    assert lp.shape == (3, V) and lp.dtype == torch.float32
    assert att.shape == (3, 2, 2, 7)
    assert new_state["k1"].shape == (3, 2, 1, 16)
    assert state["k0"].shape == (3, 2, 0, 16)  # the input state is not modified
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3), atol=1e-5)


def test_causal_mask():
    model = make_model()
    src, lens, tgt = batch_with_lengths([5, 3, 7])
    logits, _ = model(src, lens, tgt)
    changed = tgt.clone()
    changed[:, 4] = (changed[:, 4] - 4 + 1) % (V - 4) + 4
    logits2, _ = model(src, lens, changed)
    assert torch.allclose(logits[:, :4], logits2[:, :4], atol=1e-6)
    assert not torch.allclose(logits[:, 4:], logits2[:, 4:], atol=1e-4)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_padding_mask(pre_norm):
    model = make_model(pre_norm=pre_norm)
    src, lens, tgt = batch_with_lengths([5, 3, 7])
    logits, att = model(src, lens, tgt, return_attention=True)
    padded = torch.cat([src, torch.full((3, 4), PAD, dtype=torch.long)], 1)  # S = 11
    logits2, att2 = model(padded, lens, tgt, return_attention=True)
    assert torch.allclose(logits, logits2, atol=1e-5)
    assert torch.allclose(att, att2[..., :7], atol=1e-5)
    # garbage (not PAD ids) in padded positions must be ignored too, thanks to src_lens
    garbage = src.clone()
    garbage[1, 3:] = 5
    logits3, _ = model(garbage, lens, tgt)
    assert torch.allclose(logits, logits3, atol=1e-5)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_incremental_equals_full(pre_norm):
    model = make_model(pre_norm=pre_norm)
    src, lens, tgt = batch_with_lengths([5, 2, 7, 4])
    with torch.no_grad():
        logits, att = model(src, lens, tgt, return_attention=True)
        full = F.log_softmax(logits, -1)
        inc, atts = incremental_log_probs(model, src, lens, tgt, need_attention=True)
    assert torch.allclose(full, inc, atol=1e-5)
    assert torch.allclose(att, torch.stack(atts, 1), atol=1e-5)


def test_greedy_same_both_ways():
    model = make_model(seed=3)
    src, lens, _ = batch_with_lengths([5, 2, 7, 4])
    with torch.no_grad():
        assert torch.equal(greedy(model, src, lens, 9), greedy_full(model, src, lens, 9))


def _check_attention(att: torch.Tensor, lens: torch.Tensor) -> None:
    S = att.size(-1)
    real = torch.arange(S)[None, :] < lens[:, None]  # (B, S)
    shape = (att.size(0),) + (1,) * (att.dim() - 2) + (S,)
    real = real.view(shape).expand_as(att)
    assert (att[~real] == 0).all()
    assert torch.allclose(att.sum(-1), torch.ones(att.shape[:-1]), atol=1e-5)
    assert (att >= 0).all()


def test_attention_weights_normalised_and_masked():
    model = make_model()
    src, lens, tgt = batch_with_lengths([5, 2, 7])
    with torch.no_grad():
        _, att = model(src, lens, tgt, return_attention=True)  # (B, T, L, h, S)
        _check_attention(att, lens)
        _, atts = incremental_log_probs(model, src, lens, tgt, need_attention=True)
    for a in atts:  # (B, L, h, S)
        assert a.shape == (3, 2, 2, 7) and a.dtype == torch.float32
        _check_attention(a, lens)


def test_attention_does_not_change_outputs():
    model = make_model()
    src, lens, tgt = batch_with_lengths([5, 2, 7])
    with torch.no_grad():
        a, _ = model(src, lens, tgt)
        b, _ = model(src, lens, tgt, return_attention=True)
    assert torch.allclose(a, b, atol=1e-5)


def test_tying():
    model = make_model(tie_all=True)
    assert model.src_embed.weight is model.tgt_embed.weight is model.generator.weight
    n_shared = sum(p.numel() for p in model.parameters())
    untied = make_model(tie_embeddings=False)
    assert untied.generator.weight is not untied.tgt_embed.weight
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert sum(p.numel() for p in untied.parameters()) == n_shared + 2 * V * 32
    tied = make_model(tie_embeddings=True)
    assert tied.generator.weight is tied.tgt_embed.weight
    assert tied.src_embed.weight is not tied.tgt_embed.weight
    with pytest.raises(ValueError, match="tie_all"):
        Transformer(tiny_cfg(tie_all=True), V, V + 1)


def test_reorder_mid_decode():
    model = make_model(seed=1)
    src, lens, tgt = batch_with_lengths([5, 2, 7, 4])
    idx = torch.tensor([2, 0, 0, 3, 1])
    with torch.no_grad():
        memory = model.encode(src, lens)
        state = model.init_state(memory)
        for t in range(3):
            _, _, state = model.decode_step(tgt[:, t], state, memory, t)
        memory = {k: v.index_select(0, idx) for k, v in memory.items()}
        state = {k: v.index_select(0, idx) for k, v in state.items()}
        y = tgt[:, 3].index_select(0, idx)
        lp, att, _ = model.decode_step(y, state, memory, 3, need_attention=True)
        ref, ref_att = incremental_log_probs(
            model, src[idx], lens[idx], tgt[idx, :4], need_attention=True
        )
    assert torch.allclose(lp, ref[:, 3], atol=1e-5)
    assert torch.allclose(att, ref_att[3], atol=1e-5)


@requires_native_bf16
def test_bf16_autocast_decoding():
    model = make_model(seed=2)
    src, lens, tgt = batch_with_lengths([5, 2, 7])
    with torch.no_grad():
        full = F.log_softmax(model(src, lens, tgt)[0], -1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, att = model(src, lens, tgt, return_attention=True)
            inc, atts = incremental_log_probs(model, src, lens, tgt, need_attention=True)
    assert inc.dtype == torch.float32 and torch.isfinite(inc).all()
    assert (inc - full).abs().max() < 0.1
    assert (F.log_softmax(logits.float(), -1) - full).abs().max() < 0.1
    _check_attention(att, lens)
    for a in atts:
        _check_attention(a, lens)


def test_training_mode_with_dropout_runs_backward():
    torch.manual_seed(0)
    model = Transformer(tiny_cfg(dropout=0.1, attention_dropout=0.1), V, V).train()
    src, lens, tgt = batch_with_lengths([5, 2, 7])
    logits, att = model(src, lens, tgt, return_attention=True)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    _check_attention(att.detach(), lens)


def test_inverse_sqrt_lr():
    assert inverse_sqrt_lr(1, 4) == pytest.approx(0.25)
    assert inverse_sqrt_lr(2, 4) == pytest.approx(0.5)
    assert inverse_sqrt_lr(4, 4) == pytest.approx(1.0)
    assert inverse_sqrt_lr(16, 4) == pytest.approx(0.5)
    assert inverse_sqrt_lr(0, 4) == pytest.approx(0.25)
    assert inverse_sqrt_lr(9, 0) == pytest.approx(1 / 3)
    values = [inverse_sqrt_lr(s, 100) for s in range(1, 1000)]
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 99


@pytest.mark.slow
def test_learns_reversal():
    torch.manual_seed(0)
    model = Transformer(tiny_cfg(), V, V)
    steps, lr = 500, 3e-3
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(1)
    model.train()
    for step in range(1, steps + 1):
        src, lens, tgt = random_batch(64, gen)
        logits, _ = model(src, lens, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:  # constant, then linear decay over the last 40%
            group["lr"] = lr * min(1.0, (steps - step) / (0.4 * steps) + 0.05)
    assert math.isfinite(loss.item())
    model.eval()
    src, lens, tgt = random_batch(200, torch.Generator().manual_seed(99))
    with torch.no_grad():
        out = greedy(model, src, lens, tgt.size(1) - 1)
    correct = sum(
        bool(torch.equal(out[i, : n + 1], tgt[i, 1 : n + 2])) for i, n in enumerate(lens.tolist())
    )
    assert correct / len(lens) >= 0.95


def test_lazy_reorder_matches_index_select():
    """reorder_state only records the rows; the next step gathers them while it grows the
    cache. Its log-probs, attention and new cache equal those of index_select on every tensor,
    for repeated rows, a shrinking batch and two reorders in a row (composed)."""
    model = make_model(seed=1)
    src, lens, tgt = batch_with_lengths([5, 2, 7, 4])
    with torch.no_grad():
        memory = model.encode(src, lens)
        state = model.init_state(memory)
        for t in range(3):
            _, _, state = model.decode_step(tgt[:, t], state, memory, t)
        first, second = torch.tensor([2, 0, 0, 3, 1]), torch.tensor([4, 1, 1])
        lazy = model.reorder_state(model.reorder_state(state, first), second)
        assert set(lazy) == set(state) | {"rows"} and lazy["k0"] is state["k0"]  # nothing copied
        rows = first[second]
        eager = {k: v.index_select(0, rows) for k, v in state.items()}
        memory = {k: v.index_select(0, rows) for k, v in memory.items()}
        y = tgt[rows, 3]
        lp_lazy, att_lazy, next_lazy = model.decode_step(y, lazy, memory, 3, need_attention=True)
        lp_eager, att_eager, next_eager = model.decode_step(y, eager, memory, 3, True)
    assert torch.equal(lp_lazy, lp_eager) and torch.equal(att_lazy, att_eager)
    assert "rows" not in next_lazy
    for key in ("k0", "v0", "k1", "v1"):
        assert next_lazy[key].shape == (3, 2, 4, 16)
        assert torch.equal(next_lazy[key], next_eager[key])
