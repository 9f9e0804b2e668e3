"""The fused output-projection + cross-entropy (nmt.loss) and nmt's CPU dropout."""

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_native_bf16

from nmt.loss import linear_cross_entropy
from nmt.models.dropout import Dropout, dropout, effective_rate, keep_mask, keep_scale


def reference(hidden, lin, target, eps, dtype=torch.float32):
    bias = None if lin.bias is None else lin.bias.to(dtype)
    logits = F.linear(hidden.to(dtype), lin.weight.to(dtype), bias).float()
    return F.cross_entropy(logits, target, label_smoothing=eps, reduction="sum")


def grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [7, 64, 1000])
@pytest.mark.parametrize("width", [16, 20])  # with the bias column and without: both padded
def test_linear_cross_entropy_matches_cross_entropy_fp32(bias, eps, chunk, width):
    torch.manual_seed(0)
    hidden = torch.randn(150, width, requires_grad=True)
    lin = torch.nn.Linear(width, 37, bias=bias)
    target = torch.randint(0, 37, (150,))
    ref = reference(hidden, lin, target, eps)
    out = linear_cross_entropy(hidden, lin.weight, lin.bias, target, eps, chunk=chunk)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-4)
    for a, b in zip(
        grads(ref * 0.3, hidden, lin.weight, lin.bias),
        grads(out * 0.3, hidden, lin.weight, lin.bias),
    ):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


@requires_native_bf16
def test_linear_cross_entropy_bf16_close_to_fp32_and_no_grad_value():
    torch.manual_seed(1)
    hidden = torch.randn(300, 32)
    lin = torch.nn.Linear(32, 500)
    target = torch.randint(0, 500, (300,))
    ref = reference(hidden, lin, target, 0.1, torch.bfloat16)  # same bf16 logits
    out = linear_cross_entropy(
        hidden.bfloat16(), lin.weight, lin.bias, target, 0.1, dtype=torch.bfloat16
    )
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-2)
    with torch.no_grad():
        fp32 = linear_cross_entropy(hidden, lin.weight, lin.bias, target, 0.1)
    torch.testing.assert_close(fp32, reference(hidden, lin, target, 0.1), rtol=1e-5, atol=1e-3)


def test_linear_cross_entropy_exact_when_the_target_probability_underflows():
    # logits hundreds apart: softmax(z)_y is 0 in float32 for most rows, and the loss and the
    # per-row -log p(y) must still be the exact log-sum-exp ones (no inf, no nan)
    torch.manual_seed(2)
    hidden = (torch.randn(40, 8) * 60).requires_grad_()
    lin = torch.nn.Linear(8, 30)
    target = torch.randint(0, 30, (40,))
    ref = reference(hidden, lin, target, 0.1)
    rows = torch.empty(40)
    out = linear_cross_entropy(hidden, lin.weight, lin.bias, target, 0.1, chunk=16, rows=rows)
    assert torch.isfinite(out)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-2)
    logits = lin(hidden).detach()
    torch.testing.assert_close(rows, F.cross_entropy(logits, target, reduction="none"))
    assert int((rows > 104).sum()) >= 5  # p(y) < 1e-45: really out of float32 softmax range
    for a, b in zip(grads(ref, hidden, lin.weight), grads(out, hidden, lin.weight)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_linear_cross_entropy_rejects_bad_shapes():
    lin = torch.nn.Linear(4, 5)
    with pytest.raises(ValueError, match="expected hidden"):
        linear_cross_entropy(
            torch.randn(2, 3, 4), lin.weight, lin.bias, torch.zeros(2, dtype=torch.long)
        )


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_dropout_mask_rate_and_scale(p):
    torch.manual_seed(0)
    rate = effective_rate(p)  # p rounded to a multiple of 1/256
    assert abs(rate - p) <= 1 / 512 and (rate * 256).is_integer()
    keep = keep_mask((1_000_000,), p, torch.device("cpu"))
    assert abs(keep.float().mean().item() - (1 - rate)) < 0.002
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, p, training=True)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - rate)))
    assert abs(y.mean().item() - 1.0) < 0.02
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # backward uses the forward mask
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - rate)))


def test_dropout_mask_is_exactly_zero_or_the_scale():
    torch.manual_seed(1)
    mask = keep_scale((50_000,), 0.1, torch.device("cpu"))
    values = set(mask.unique().tolist())
    assert values == {0.0, torch.tensor(1 / (1 - effective_rate(0.1))).item()}
    assert effective_rate(0.001) == 0.0  # rounds to no dropout: the input comes back as it is
    x = torch.randn(10, 10)
    assert dropout(x, 0.001, training=True) is x


def test_dropout_eval_identity_and_seeded():
    x = torch.randn(64, 33)
    module = Dropout(0.3).eval()
    assert module(x) is x
    module.train()
    torch.manual_seed(5)
    a = module(x)
    torch.manual_seed(5)
    b = module(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, module(x))
    assert torch.equal(dropout(x, 0.0, True), x)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)
