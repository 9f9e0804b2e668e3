"""Tests for nmt.models.attention: shapes, masking, local windows vs a loop reference, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import requires_native_bf16

from nmt.config import AttentionConfig
from nmt.models.attention import (
    SCORES,
    Attention,
    BahdanauAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
    LuongLocationAttention,
    masked_normalize,
    masked_softmax,
)
from nmt.models.local_attention import LocalAttention, LocalMAttention, LocalPAttention
from nmt.models.mechanisms import MECHANISMS, build_attention

H = 6  # query and key size (dot needs them equal)
D = 2  # local window half-width
LENGTHS = [9, 2, 5]  # very different true lengths in one batch; S = 9

# every mechanism of the table: a new one is tested without editing these lists
GLOBAL = [n for n, cls in MECHANISMS.items() if not issubclass(cls, LocalAttention)]
LOCAL = [(n, s) for n, cls in MECHANISMS.items() if issubclass(cls, LocalAttention) for s in SCORES]
ALL = [(t, "general") for t in GLOBAL] + LOCAL
IDS = [f"{t}-{s}" if t.startswith("local") else t for t, s in ALL]


def make(type_: str, score: str = "general", q: int = H, k: int = H, **kw) -> Attention:
    torch.manual_seed(0)
    cfg = AttentionConfig(type=type_, score=score, window=D, max_src_len=16, **kw)
    return build_attention(cfg, q, k)


def batch(lengths=LENGTHS, T: int = 1, q: int = H, k: int = H, seed: int = 1):
    """query (B,T,q), encoder outputs (B,S,k) zeroed on padding, mask (B,S)."""
    g = torch.Generator().manual_seed(seed)
    B, S = len(lengths), max(lengths)
    mask = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]  # (B,S)
    enc = torch.randn(B, S, k, generator=g) * mask[..., None]
    query = torch.randn(B, T, q, generator=g)
    return query, enc, mask


def run(attn: Attention, query, enc, mask, step: int = 0):
    return attn(query, attn.project_keys(enc), enc, mask, step=step)


def test_build_types():
    expected = {
        "bahdanau": BahdanauAttention,
        "luong_dot": LuongDotAttention,
        "luong_general": LuongGeneralAttention,
        "luong_concat": LuongConcatAttention,
        "luong_location": LuongLocationAttention,
        "local_m": LocalMAttention,
        "local_p": LocalPAttention,
    }
    for type_, cls in expected.items():
        assert type(make(type_)) is cls
    with pytest.raises(ValueError):
        make("nope")


@pytest.mark.parametrize("type_,score", ALL, ids=IDS)
@pytest.mark.parametrize("T", [1, 4])
def test_shapes_and_padding(type_, score, T):
    attn = make(type_, score)
    query, enc, mask = batch(T=T)
    context, weights = run(attn, query, enc, mask)
    B, S = mask.shape
    assert context.shape == (B, T, H)
    assert weights.shape == (B, T, S)
    assert weights.dtype == torch.float32
    assert torch.isfinite(weights).all() and torch.isfinite(context).all()
    assert (weights.masked_select(~mask[:, None, :]) == 0.0).all()  # exactly zero on padding
    assert (weights >= 0).all()


def test_mixed_sizes():
    query, enc, mask = batch(q=5, k=7, T=3)
    for type_, score in ALL:
        if score == "dot" or type_ == "luong_dot":
            continue
        context, weights = run(make(type_, score, q=5, k=7), query, enc, mask)
        assert context.shape == (3, 3, 7) and weights.shape == (3, 3, 9)


@pytest.mark.parametrize("type_", GLOBAL)
def test_global_weights_sum_to_one(type_):
    query, enc, mask = batch(T=3)
    _, weights = run(make(type_), query, enc, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3), atol=1e-5, rtol=0)


def reference_local(attn: LocalAttention, score: str, query, enc, mask, step: int):
    """Loop-based local attention: raw scores, p_t, softmax over the window, Gaussian."""
    B, T, _ = query.shape
    S = enc.size(1)
    align = attn.align
    ref = torch.zeros(B, T, S, dtype=torch.float64)
    pos = torch.zeros(B, T, dtype=torch.float64)
    with torch.no_grad():
        for b in range(B):
            S_b = int(mask[b].sum())
            for t in range(T):
                h = query[b, t].double()
                if isinstance(attn, LocalMAttention):
                    p = float(min(max(step + t, 0), S_b - 1))
                else:  # Luong 2015, eq. 9
                    W_p, v_p = attn.W_p.weight.double(), attn.v_p.weight.double()[0]
                    p = S_b / (1 + math.exp(-float(v_p @ torch.tanh(W_p @ h))))
                pos[b, t] = p
                window = [s for s in range(S_b) if abs(s - p) <= D]
                raw = {}
                for s in window:
                    hs = enc[b, s].double()
                    if score == "dot":
                        raw[s] = float(h @ hs)
                    elif score == "general":
                        raw[s] = float(h @ (align.W_a.weight.double() @ hs))
                    else:
                        W1, W2 = align.W1.weight.double(), align.W2.weight.double()
                        raw[s] = float(align.v_a.weight.double()[0] @ torch.tanh(W1 @ h + W2 @ hs))
                z = sum(math.exp(r) for r in raw.values())
                for s, r in raw.items():
                    a = math.exp(r) / z
                    if attn.gaussian:
                        a *= math.exp(-((s - p) ** 2) / (2 * (D / 2) ** 2))
                    ref[b, t, s] = a
    return ref, pos


@pytest.mark.parametrize("type_,score", LOCAL, ids=[f"{t}-{s}" for t, s in LOCAL])
@pytest.mark.parametrize("step", [0, 3])
def test_local_matches_reference(type_, score, step):
    attn = make(type_, score)
    query, enc, mask = batch(T=4)
    context, weights = run(attn, query, enc, mask, step=step)
    ref, pos = reference_local(attn, score, query, enc, mask, step)
    p_t = attn.predict_position(query, mask, step)
    torch.testing.assert_close(p_t.double(), pos, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.double(), ref, atol=1e-5, rtol=0)
    # zero outside [p_t - D, p_t + D]
    s = torch.arange(mask.size(1))[None, None, :]
    outside = (s - p_t[..., None]).abs() > D
    assert (weights[outside] == 0.0).all()
    torch.testing.assert_close(context, weights @ enc, atol=1e-5, rtol=0)


def test_gaussian_defaults():
    assert make("local_m").gaussian is False  # paper: local-m uses eq. 7 only
    assert make("local_p").gaussian is True  # paper: local-p multiplies by eq. 10
    assert make("local_m", gaussian=True).gaussian is True
    assert make("local_p", gaussian=False).gaussian is False
    # without the Gaussian a local window is a proper distribution
    query, enc, mask = batch(T=2)
    _, weights = run(make("local_p", gaussian=False), query, enc, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_local_p_position_in_own_length(score):
    lengths = [14, 1, 3, 8]
    attn = make("local_p", score)
    query, enc, mask = batch(lengths=lengths, T=6)
    query = query * 20  # push the sigmoid towards both ends
    p_t = attn.predict_position(query, mask)
    S_b = torch.tensor(lengths, dtype=torch.float32)[:, None]
    assert (p_t >= 0).all() and (p_t <= S_b).all()
    _, weights = run(attn, query, enc, mask)
    assert torch.isfinite(weights).all()
    assert (weights.sum(-1) > 0).all()  # the window always holds a real token


def test_local_m_step_offset():
    attn = make("local_m", "dot")
    query, enc, mask = batch(T=4)
    p_t = attn.predict_position(query, mask, step=3)
    expected = torch.tensor([[3, 4, 5, 6], [1, 1, 1, 1], [3, 4, 4, 4]], dtype=torch.float32)
    assert torch.equal(p_t, expected)
    # T steps at once == one step at a time with step = t
    context, weights = run(attn, query, enc, mask, step=3)
    for t in range(4):
        c_t, w_t = run(attn, query[:, t : t + 1], enc, mask, step=3 + t)
        torch.testing.assert_close(w_t, weights[:, t : t + 1], atol=1e-6, rtol=0)
        torch.testing.assert_close(c_t, context[:, t : t + 1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("type_,score", ALL, ids=IDS)
def test_gradients_reach_every_parameter(type_, score):
    attn = make(type_, score)
    query, enc, mask = batch(T=3)
    query.requires_grad_(True)
    enc.requires_grad_(True)
    context, weights = run(attn, query, enc, mask)
    (context.pow(2).sum() + weights.pow(2).sum()).backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
    assert query.grad.abs().sum() > 0


@pytest.mark.parametrize("type_,score", ALL, ids=IDS)
def test_padding_does_not_change_short_sentence(type_, score):
    attn = make(type_, score)
    query, enc, mask = batch(T=3)
    context, weights = run(attn, query, enc, mask, step=1)
    for b, n in enumerate(LENGTHS):
        c_b, w_b = run(attn, query[b : b + 1], enc[b : b + 1, :n], mask[b : b + 1, :n], step=1)
        torch.testing.assert_close(c_b, context[b : b + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(w_b, weights[b : b + 1, :, :n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("type_,score", ALL, ids=IDS)
def test_fully_padded_row_gives_zeros(type_, score):
    attn = make(type_, score)
    query, enc, mask = batch(lengths=[4, 3], T=2)
    mask[1] = False
    query.requires_grad_(True)
    context, weights = run(attn, query, enc, mask)
    assert (weights[1] == 0).all() and (context[1] == 0).all()
    assert torch.isfinite(weights).all()
    context.sum().backward()
    assert torch.isfinite(query.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters() if p.grad is not None)


@requires_native_bf16
@pytest.mark.parametrize("type_,score", ALL, ids=IDS)
def test_bf16_autocast(type_, score):
    attn = make(type_, score)
    query, enc, mask = batch(T=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        context, weights = run(attn, query, enc, mask)
    assert weights.dtype == torch.float32
    assert torch.isfinite(weights).all() and torch.isfinite(context.float()).all()
    assert (weights.masked_select(~mask[:, None, :]) == 0.0).all()
    _, w32 = run(attn, query, enc, mask)
    torch.testing.assert_close(weights, w32, atol=0.1, rtol=0)


def test_masked_softmax_exact_zeros():
    scores = torch.tensor([[[1e4, -1e4, 3.0, 0.0]]])
    mask = torch.tensor([[[True, False, True, False]]])
    w = masked_softmax(scores, mask)
    assert w[0, 0, 1] == 0.0 and w[0, 0, 3] == 0.0
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    assert (masked_softmax(scores, torch.zeros_like(mask)) == 0).all()


def test_dot_size_mismatch_raises():
    with pytest.raises(ValueError, match="query_size == key_size"):
        make("luong_dot", q=5, k=7)
    with pytest.raises(ValueError, match="query_size == key_size"):
        make("local_m", "dot", q=5, k=7)


def test_location_too_long_source_raises():
    attn = make("luong_location")  # max_src_len = 16
    query, enc, mask = batch(lengths=[17, 3])
    with pytest.raises(ValueError, match="max_src_len"):
        run(attn, query, enc, mask)
    query, enc, mask = batch(lengths=[16, 3])
    run(attn, query, enc, mask)  # S == max_src_len is fine


# --- sparse normalisers: sparsemax, 1.5-entmax (attention.normalizer) ----------------------------
SPARSE = ["sparsemax", "entmax15"]


def test_sparsemax_matches_the_closed_form():
    # Martins & Astudillo 2016: z = (1, 0.5, -1) has support {1, 2}, tau = (1.5 - 1) / 2 = 0.25
    w = masked_normalize(
        torch.tensor([[[1.0, 0.5, -1.0]]]), torch.ones(1, 1, 3, dtype=torch.bool), "sparsemax"
    )
    torch.testing.assert_close(w, torch.tensor([[[0.75, 0.25, 0.0]]]))


def test_entmax15_matches_bisection_and_ignores_masked_scores():
    from entmax import entmax_bisect

    g = torch.Generator().manual_seed(3)
    scores = torch.randn(4, 3, 7, generator=g) * 2
    mask = torch.rand(4, 1, 7, generator=g) > 0.3
    mask[..., 0] = True
    w = masked_normalize(scores, mask, "entmax15")
    for b in range(4):
        keep = mask[b, 0]
        ref = entmax_bisect(scores[b][:, keep], alpha=1.5, dim=-1, n_iter=100)
        torch.testing.assert_close(w[b][:, keep], ref, atol=1e-5, rtol=0)
        assert (w[b][:, ~keep] == 0).all()
    assert (w == 0).sum() > (~mask).expand_as(w).sum()  # exact zeros beyond the masked ones


@pytest.mark.parametrize("normalizer", SPARSE)
@pytest.mark.parametrize("type_,score", ALL, ids=IDS)
def test_sparse_normalizers_every_mechanism(type_, score, normalizer):
    attn = make(type_, score, normalizer=normalizer)
    assert attn.normalizer == normalizer
    query, enc, mask = batch(T=4)
    query.requires_grad_(True)
    context, weights = run(attn, query, enc, mask, step=1)
    assert (weights.masked_select(~mask[:, None, :]) == 0).all()  # padding
    if isinstance(attn, LocalAttention):  # outside the window [p_t - D, p_t + D]
        p_t = attn.predict_position(query, mask, step=1)  # (B,T)
        outside = (torch.arange(mask.size(1))[None, None, :] - p_t[..., None]).abs() > D
        assert (weights.masked_select(outside) == 0).all()
    if not getattr(attn, "gaussian", False):  # local-p multiplies by its Gaussian (Luong eq. 10)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    (context.pow(2).sum() + weights.pow(2).sum()).backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert torch.isfinite(query.grad).all()


@pytest.mark.parametrize("normalizer", SPARSE)
def test_sparse_normalizers_read_fewer_positions(normalizer):
    attn = make("luong_general", normalizer=normalizer)
    query, enc, mask = batch(lengths=[9, 9, 9], T=6)
    _, soft = run(make("luong_general"), query * 4, enc, mask)
    _, sparse = run(attn, query * 4, enc, mask)
    assert (soft > 0).all() and (sparse == 0).any()
    assert ((sparse > 0).sum(-1) >= 1).all()


def test_unknown_normalizer_is_a_config_error():
    from nmt.config import ConfigError

    with pytest.raises(ConfigError, match="attention.normalizer='softmin' is not one of softmax"):
        MECHANISMS["luong_dot"].check(AttentionConfig(type="luong_dot", normalizer="softmin"), 50)
