"""model/packed_linear.py (oneDNN with pre-packed weights, the batched decode step's linears)
against its reference F.linear: the same numbers within float32 rounding on odd shapes, a row's bits
independent of the row count, and a weight changed in place seen at the next call."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tinyllm.model.packed_linear as PL
from tinyllm.kernels.tolerances import CLOSE, error_bound

onednn = pytest.mark.skipif(not PL.available(), reason="this torch has no oneDNN")


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@onednn
@pytest.mark.parametrize("n_in,n_out", [(1, 1), (7, 13), (192, 576), (33, 5), (384, 1000)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 3, 4, 17])
def test_matches_f_linear(n_in, n_out, bias, rows):
    layer = nn.Linear(n_in, n_out, bias=bias)
    x = torch.randn(rows, 1, n_in) * 3
    got = PL.packed_linear(layer, x)
    assert got.shape == (rows, 1, n_out)
    ref64 = F.linear(x.double(), layer.weight.double(), None if layer.bias is None else layer.bias.double())
    err_torch = (F.linear(x, layer.weight, layer.bias).double() - ref64).abs().max().item()
    bound = error_bound(torch.float32, err_torch, ref64.abs().max().item(), interpreted=False)
    assert (got.double() - ref64).abs().max().item() <= bound
    assert any(w is layer.weight for w in packed_weights()), "the oneDNN path did not run"


@onednn
@pytest.mark.parametrize("n_in,n_out", [(192, 576), (384, 10000), (13, 7)])
def test_a_rows_bits_do_not_depend_on_the_row_count(n_in, n_out):
    layer = nn.Linear(n_in, n_out)
    x = torch.randn(64, n_in)
    alone = PL.packed_linear(layer, x[:1])
    for m in [*range(2, 21), 32, 64]:
        assert torch.equal(PL.packed_linear(layer, x[:m])[:1], alone), f"row 0 differs at {m} rows"


@onednn
def test_a_weight_changed_in_place_is_packed_again():
    layer = nn.Linear(8, 6)
    x = torch.randn(4, 8)
    PL.packed_linear(layer, x)
    layer.weight.mul_(-2.0)  # in place: its version counter moves
    torch.testing.assert_close(
        PL.packed_linear(layer, x), F.linear(x, layer.weight, layer.bias), **CLOSE[torch.float32]
    )
    layer.weight = nn.Parameter(torch.randn(6, 8))  # a new tensor
    torch.testing.assert_close(
        PL.packed_linear(layer, x), F.linear(x, layer.weight, layer.bias), **CLOSE[torch.float32]
    )
    layer.weight.data.mul_(3.0)  # .data bypasses the counter: clear_packed() is the documented way
    PL.clear_packed()
    torch.testing.assert_close(
        PL.packed_linear(layer, x), F.linear(x, layer.weight, layer.bias), **CLOSE[torch.float32]
    )


def test_a_packed_copy_goes_with_its_weight():
    import gc

    layer = nn.Linear(5, 3)
    PL.packed_linear(layer, torch.randn(2, 5))
    n = len(PL._packed)
    del layer
    gc.collect()
    assert len(PL._packed) == n - (1 if PL.available() else 0)


def packed_weights() -> list:
    return [r() for r, _, _ in PL._packed.values()]


@pytest.mark.parametrize("case", ["float64", "grad"])
def test_other_cases_are_f_linear_itself(case):
    layer = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    if case == "float64":
        layer, x = layer.double(), x.double()
        got = PL.packed_linear(layer, x)
    else:
        with torch.enable_grad():
            got = PL.packed_linear(layer, x)
            assert got.requires_grad  # autograd still sees it: F.linear ran
    assert not any(w is layer.weight for w in packed_weights()), "oneDNN ran where F.linear should"
    torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias), rtol=0, atol=0)


def test_a_model_not_packed_follows_a_fused_optimizer_step():
    """Fused AdamW (the trainer's) changes weights without moving their version counters, so a packed
    copy could not see it: only pack_for_inference() models pack, and a model being trained computes
    forward_rows with its live weights (equal to forward after the step)."""
    from tinyllm.model import ModelConfig, TinyLLM

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, context_length=16, d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0)
    model = TinyLLM(cfg)
    ids = torch.randint(4, 64, (1, 6))

    def step_then_full():
        cache = model.new_cache(1)
        model(ids[:, :-1], cache=cache)
        return model.forward_rows([int(ids[0, -1])], [cache])[0], model(ids)[0][0, -1]

    step_then_full()  # a decode step before training: whatever it packs must not outlive the weights
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    with torch.enable_grad():
        model(ids)[0].square().mean().backward()
    versions = [p._version for p in model.parameters()]
    opt.step()
    assert [p._version for p in model.parameters()] == versions  # the premise: no counter moved
    row, full = step_then_full()
    torch.testing.assert_close(row, full, atol=1e-5, rtol=1e-4)
