"""The sampler: top-k, top-p, temperature 0.

Logits are fresh each run (a new seed per test), so the checks see new distributions;
the seed is printed, and pytest shows it under a failure: rerun with
TINYLLM_TEST_SEED=<seed> to get the same logits and draws.
"""

import os
import secrets

import pytest
import torch

from tinyllm.generate import filter_logits, sample_next

SEED_ENV = "TINYLLM_TEST_SEED"


@pytest.fixture
def seed(request) -> int:
    """TINYLLM_TEST_SEED if set, else a fresh one; printed so a failure can be replayed."""
    value = os.environ.get(SEED_ENV)
    if value:
        try:
            seed = int(value)
        except ValueError:
            pytest.fail(f"{SEED_ENV} must be an int, got {value!r}")
    else:
        seed = secrets.randbelow(2**31)
    print(f"replay with: {SEED_ENV}={seed} python -m pytest '{request.node.nodeid}'")
    return seed


def _fresh_logits(seed: int, B=4, V=53):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, V, generator=g) * 3


def _generator(seed: int, offset: int) -> torch.Generator:
    """Draws of their own, replayed with the logits (offset: not the logits' stream)."""
    return torch.Generator().manual_seed(seed + offset)


def test_temperature_zero_is_argmax(seed):
    logits = _fresh_logits(seed)
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


@pytest.mark.parametrize("k", [1, 3, 17])
def test_top_k_never_samples_outside_the_k_most_likely(seed, k):
    logits = _fresh_logits(seed, B=3)
    allowed = torch.topk(logits, k, dim=-1).indices
    gen = _generator(seed, 1)
    for _ in range(300):
        ids = sample_next(logits, temperature=1.5, top_k=k, generator=gen)
        for b in range(3):
            assert ids[b] in allowed[b]


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_reaching_p(seed, p):
    logits = _fresh_logits(seed, B=5, V=31)
    kept = torch.isfinite(filter_logits(logits, top_p=p))
    probs = torch.softmax(logits, -1)
    for b in range(5):
        order = torch.argsort(probs[b], descending=True)
        cum = torch.cumsum(probs[b][order], 0)
        n = int((cum < p).sum()) + 1  # smallest prefix whose mass reaches p
        expected = torch.zeros(31, dtype=torch.bool)
        expected[order[:n]] = True
        assert torch.equal(kept[b], expected)
        assert probs[b][kept[b]].sum() >= p - 1e-6


def test_top_p_samples_only_inside_the_nucleus(seed):
    logits = _fresh_logits(seed, B=2, V=40)
    kept = torch.isfinite(filter_logits(logits, top_p=0.6))
    gen = _generator(seed, 1)
    for _ in range(300):
        ids = sample_next(logits, temperature=1.0, top_p=0.6, generator=gen)
        assert kept[0, ids[0]] and kept[1, ids[1]]


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.5, 5, None), (0.7, None, 0.8), (1.0, 10, 0.9)])
def test_filtered_sampling_follows_the_renormalized_distribution(seed, temperature, top_k, top_p):
    """Inside the kept set the draws follow softmax(logits / T) renormalized: not just the
    argmax, not the unscaled logits. 20000 draws: a frequency's sd is at most 0.0036,
    so atol 0.02 is over 5 sd."""
    logits = _fresh_logits(seed, B=1, V=53)
    expected = torch.softmax(filter_logits(logits / temperature, top_k, top_p), -1)[0]  # (V,)
    n = 20000
    ids = sample_next(logits.expand(n, -1), temperature, top_k, top_p, generator=_generator(seed, 1))  # (n,)
    freq = torch.bincount(ids, minlength=53).float() / n
    torch.testing.assert_close(freq, expected, atol=0.02, rtol=0)


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    gen = torch.Generator().manual_seed(2)
    counts = (
        torch.bincount(
            torch.stack([sample_next(logits, 1.0, generator=gen) for _ in range(4000)]).flatten(), minlength=3
        ).float()
        / 4000
    )
    torch.testing.assert_close(counts, torch.tensor([0.7, 0.2, 0.1]), atol=0.03, rtol=0)


def test_negative_temperature_rejected(seed):
    with pytest.raises(ValueError, match="temperature"):
        sample_next(_fresh_logits(seed), temperature=-1)


def test_tiny_temperature_is_greedy_not_nan(seed):
    logits = _fresh_logits(seed, B=3, V=50) * 3
    assert torch.equal(sample_next(logits, 1e-45), logits.argmax(-1))
