"""The sampler: top-k, top-p, temperature 0."""

import pytest
import torch

from tinyllm.generate import filter_logits, sample_next


def _fresh_logits(B=4, V=53, seed=None):
    g = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**31)
    return torch.randn(B, V, generator=g) * 3


def test_temperature_zero_is_argmax():
    logits = _fresh_logits()
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


@pytest.mark.parametrize("k", [1, 3, 17])
def test_top_k_never_samples_outside_the_k_most_likely(k):
    logits = _fresh_logits(B=3)
    allowed = torch.topk(logits, k, dim=-1).indices
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        ids = sample_next(logits, temperature=1.5, top_k=k, generator=gen)
        for b in range(3):
            assert ids[b] in allowed[b]


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_reaching_p(p):
    logits = _fresh_logits(B=5, V=31)
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


def test_top_p_samples_only_inside_the_nucleus():
    logits = _fresh_logits(B=2, V=40)
    kept = torch.isfinite(filter_logits(logits, top_p=0.6))
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        ids = sample_next(logits, temperature=1.0, top_p=0.6, generator=gen)
        assert kept[0, ids[0]] and kept[1, ids[1]]


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    gen = torch.Generator().manual_seed(2)
    counts = torch.bincount(torch.stack([sample_next(logits, 1.0, generator=gen) for _ in range(4000)]).flatten(),
                            minlength=3).float() / 4000
    torch.testing.assert_close(counts, torch.tensor([0.7, 0.2, 0.1]), atol=0.03, rtol=0)


def test_negative_temperature_rejected():
    with pytest.raises(ValueError, match="temperature"):
        sample_next(_fresh_logits(), temperature=-1)


def test_tiny_temperature_is_greedy_not_nan():
    logits = torch.randn(3, 50) * 10
    assert torch.equal(sample_next(logits, 1e-45), logits.argmax(-1))
