"""The fused, chunked LM head + cross-entropy against its plain twin (model/loss.py)."""

import pytest
import torch

from tinyllm.kernels.tolerances import CLOSE, error_bound
from tinyllm.model import ModelConfig, TinyLLM
from tinyllm.model.loss import linear_cross_entropy, linear_cross_entropy_ref

TOL = CLOSE[torch.float32]  # the same math in another order (chunks): kernels/tolerances.py


def _inputs(N, C, V, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, C, generator=g, requires_grad=True)
    w = (torch.randn(V, C, generator=g) * 0.3).requires_grad_()
    t = torch.randint(0, V, (N,), generator=g)
    t[::4] = -100  # ignored rows: padding, Q&A prompts
    return h, w, t


def _loss_and_grads(fn, h, w, t, **kw):
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    loss = fn(h, w, t, **kw)
    (3.0 * loss).backward()  # an upstream gradient that is not 1
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize(
    "N,C,V,chunk", [(37, 24, 61, 5), (37, 24, 61, 16), (37, 24, 61, 1000), (9, 7, 41, 4), (64, 32, 300, None)]
)
def test_matches_the_plain_head_and_loss(N, C, V, chunk):
    h, w, t = _inputs(N, C, V)
    got = _loss_and_grads(linear_cross_entropy, h, w, t, chunk=chunk)
    want = _loss_and_grads(linear_cross_entropy_ref, h, w, t)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL)


def test_bf16_autocast_error_is_within_twice_the_plain_ops_error():
    h, w, t = _inputs(50, 32, 97, seed=1)
    exact = _loss_and_grads(linear_cross_entropy_ref, h.double(), w.double(), t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _loss_and_grads(linear_cross_entropy, h, w, t, chunk=7)
        plain = _loss_and_grads(linear_cross_entropy_ref, h, w, t)
    for g, p, e in zip(got, plain, exact):
        assert g.dtype == p.dtype
        err, ref_err = (g.double() - e).abs().max().item(), (p.double() - e).abs().max().item()
        assert err <= error_bound(torch.bfloat16, ref_err, e.abs().max().item(), interpreted=False), (err, ref_err)


def test_all_rows_ignored_gives_zero_loss_and_zero_gradient():
    h, w, t = _inputs(8, 4, 11)
    t[:] = -100
    loss, gh, gw = _loss_and_grads(linear_cross_entropy, h, w, t)
    assert loss.item() == 0.0 and not gh.any() and not gw.any()


def test_no_grad_computes_only_the_loss():
    h, w, t = _inputs(20, 8, 30)
    with torch.no_grad():
        a = linear_cross_entropy(h, w, t, chunk=3)
    torch.testing.assert_close(a, linear_cross_entropy_ref(h, w, t).detach())


def test_model_without_logits_trains_like_the_model_with_them():
    cfg = ModelConfig(vocab_size=71, context_length=16, d_model=32, n_layers=2, n_heads=2, d_ff=48, dropout=0.0)
    idx = torch.randint(0, 71, (3, 16))
    tgt = torch.randint(0, 71, (3, 16))
    tgt[0, :5] = -100
    grads = []
    for return_logits in (True, False):
        torch.manual_seed(0)
        m = TinyLLM(cfg)
        logits, loss = m(idx, tgt, return_logits=return_logits)
        assert (logits is None) == (not return_logits)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in m.named_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0], **TOL)
    for n, g in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][n], g, **TOL, msg=lambda m, n=n: f"{n}: {m}")


def test_compiles_without_a_graph_break():
    h, w, t = _inputs(33, 16, 50)
    torch._dynamo.reset()
    fn = torch.compile(lambda h, w, t: linear_cross_entropy(h, w, t, chunk=8), fullgraph=True, backend="aot_eager")
    got = _loss_and_grads(fn, h, w, t)
    want = _loss_and_grads(linear_cross_entropy_ref, h, w, t)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TOL)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"expected h \(N, C\), weight \(V, C\), targets \(N,\)"):
        linear_cross_entropy(torch.zeros(4, 3), torch.zeros(5, 2), torch.zeros(4, dtype=torch.long))
