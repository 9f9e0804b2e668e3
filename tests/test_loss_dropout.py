"""The fused output-projection + cross-entropy (nmt.loss) and nmt's CPU dropout."""

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_native_bf16

from nmt.loss import linear_cross_entropy
from nmt.models.dropout import Dropout, dropout, keep_mask


def reference(hidden, lin, target, eps, dtype=torch.float32):
    bias = None if lin.bias is None else lin.bias.to(dtype)
    logits = F.linear(hidden.to(dtype), lin.weight.to(dtype), bias).float()
    return F.cross_entropy(logits, target, label_smoothing=eps, reduction="sum")


def grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_linear_cross_entropy_matches_cross_entropy_fp32(bias, eps, chunk):
    torch.manual_seed(0)
    hidden = torch.randn(150, 16, requires_grad=True)
    lin = torch.nn.Linear(16, 37, bias=bias)
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


def test_linear_cross_entropy_rejects_bad_shapes():
    lin = torch.nn.Linear(4, 5)
    with pytest.raises(ValueError, match="expected hidden"):
        linear_cross_entropy(
            torch.randn(2, 3, 4), lin.weight, lin.bias, torch.zeros(2, dtype=torch.long)
        )


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_dropout_mask_rate_and_scale(p):
    torch.manual_seed(0)
    keep = keep_mask((1_000_000,), p, torch.device("cpu"))
    assert abs(keep.float().mean().item() - (1 - p)) < 0.003
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, p, training=True)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.02
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # backward uses the forward mask
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - p)))


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
