"""The model: shapes, presets, init loss, attention backends agree, every position and
activation kind learns, KV cache = no cache."""

import math

import pytest
import torch

from tinyllm import ModelConfig, TinyLLM
from tinyllm.errors import TinyLLMError
from tinyllm.model import attention_ref
from tinyllm.train.presets import preset

SMALL = dict(vocab_size=97, context_length=37, d_model=48, n_layers=2, n_heads=3, d_ff=80, dropout=0.0)


# TinyLLM's table promises these sizes for its presets (parameters, tied embedding counted once)
TINYLLM_TABLE = {"tiny": 10e6, "small": 22e6, "medium": 65e6}


@pytest.mark.parametrize("name", list(TINYLLM_TABLE))
def test_preset_param_counts_match_tinyllm_table(name):
    n = TinyLLM(preset(name)).num_params()
    target = TINYLLM_TABLE[name]
    print(f"{name}: {n / 1e6:.2f}M parameters (table: {target / 1e6:.0f}M)")
    assert abs(n - target) / target < 0.10


def test_weight_tying_shares_one_tensor():
    m = TinyLLM(ModelConfig(**SMALL))
    assert m.lm_head.weight.data_ptr() == m.tok_emb.weight.data_ptr()


@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("activation", ["gelu", "relu", "silu", "swiglu"])
def test_init_loss_close_to_ln_vocab(pos_emb, activation):
    torch.manual_seed(1)
    m = TinyLLM(ModelConfig(**SMALL, pos_emb=pos_emb, activation=activation))
    x = torch.randint(0, 97, (4, 37))
    logits, loss = m(x, torch.randint(0, 97, (4, 37)))
    assert logits.shape == (4, 37, 97)
    assert abs(loss.item() - math.log(97)) < 0.1


@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("activation", ["gelu", "relu", "silu", "swiglu"])
def test_each_kind_overfits_one_batch(pos_emb, activation):
    torch.manual_seed(2)
    m = TinyLLM(ModelConfig(**SMALL, pos_emb=pos_emb, activation=activation))
    x = torch.randint(0, 97, (4, 33))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, loss = m(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.15 * first, (first, loss.item())


@pytest.mark.parametrize("T", [1, 7, 37])
@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_attention_backends_agree(T, pos_emb):
    torch.manual_seed(3)
    ref = TinyLLM(ModelConfig(**SMALL, pos_emb=pos_emb, attention="reference"))
    sdpa = TinyLLM(ModelConfig(**SMALL, pos_emb=pos_emb, attention="sdpa"))
    sdpa.load_state_dict(ref.state_dict())
    x = torch.randint(0, 97, (3, T))
    a, _ = ref(x)
    b, _ = sdpa(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_attention_ref_is_causal():
    """Changing a later token never changes an earlier output."""
    q, k, v = (torch.randn(2, 3, 11, 8) for _ in range(3))
    out = attention_ref(q, k, v)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 6:] += 5.0
    v2[:, :, 6:] -= 3.0
    out2 = attention_ref(q, k2, v2)
    torch.testing.assert_close(out[:, :, :6], out2[:, :, :6])
    assert not torch.allclose(out[:, :, 6:], out2[:, :, 6:])


@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("attention", ["reference", "sdpa"])
def test_kv_cache_logits_match_full_forward(pos_emb, attention):
    torch.manual_seed(4)
    m = TinyLLM(ModelConfig(**SMALL, pos_emb=pos_emb, attention=attention)).eval()
    x = torch.randint(0, 97, (2, 29))
    full, _ = m(x)
    cache = m.new_cache(2)
    pieces = [m(x[:, :10], cache=cache)[0]]  # prefill a chunk
    pieces.append(m(x[:, 10:17], cache=cache)[0])  # a chunk at an offset (explicit mask)
    for t in range(17, 29):  # one token at a time
        pieces.append(m(x[:, t : t + 1], cache=cache)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-4)


def test_sequence_longer_than_context_is_rejected():
    m = TinyLLM(ModelConfig(**SMALL))
    with pytest.raises(ValueError, match="exceeds context_length"):
        m(torch.zeros(1, 38, dtype=torch.long))


@pytest.mark.parametrize(
    "bad, msg",
    [
        (dict(d_model=50), "divisible by n_heads"),
        (dict(pos_emb="alibi"), "pos_emb must be one of"),
        (dict(activation="tanh"), "activation must be one of"),
        (dict(attention="flash"), "attention must be one of"),
        (dict(vocab_size=0), "vocab_size must be a positive integer"),
        (dict(dropout=1.5), "dropout must be in"),
    ],
)
def test_bad_config_is_a_clear_error(bad, msg):
    with pytest.raises(TinyLLMError, match=msg):
        ModelConfig(**{**SMALL, **bad})


def test_optimizer_decays_matrices_only():
    m = TinyLLM(ModelConfig(**SMALL))
    opt = m.configure_optimizer(1e-3, 0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() < 2 for p in no_decay["params"])
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == m.num_params()
