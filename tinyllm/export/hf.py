"""A checkpoint as a Hugging Face transformers directory, and the weight-name maps both ways.

Which standard architecture computes what our model computes (tinyllm/model/):

    pos_emb              activation          bias     -> transformers class
    learned, sinusoidal  gelu, relu, silu    on, off  -> GPT2LMHeadModel (a fixed table is a learned wpe)
    rope                 gelu, relu, silu    on, off  -> GPTNeoXForCausalLM (rotary_pct 1, sequential residual)
    rope                 swiglu              off      -> StableLmForCausalLM (partial_rotary_factor 1)
    learned, sinusoidal  swiglu              any      -> refused: no standard model adds positions to a gated MLP
    rope                 swiglu              on       -> refused: StableLM has no o_proj / MLP biases

All three are pre-norm with LayerNorm (eps 1e-5, bias), a final norm and a tied head, as ours.
A model without biases exports with zero biases where the architecture has them. Our GELU is the
tanh approximation (HF `gelu_pytorch_tanh`). Two conventions differ and are converted here:
  - GPT-2's Conv1D stores a linear layer's weight as (in, out): ours (out, in), transposed;
  - our rotary rotates interleaved channel pairs (0,1), (2,3), ...; GPT-NeoX and StableLM rotate
    halves (j, j + D/2). Permuting each head's q and k rows (ours 0,2,4,..,1,3,5,.. -> theirs
    0..D-1) turns one into the other, and q.k is unchanged because q and k move together.
  - GPT-NeoX's fused qkv is per head [q_h; k_h; v_h], ours is [q; k; v] over all heads.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import TinyLLMError
from ..io import atomic_open
from ..model.config import ModelConfig
from ..model.ffn import swiglu_hidden
from ..model.positions import sinusoidal_table
from ..tokenizer.patterns import SPECIAL_TOKENS

ROPE_BASE = 10000.0  # model/positions.py Rotary's base (not configurable there)
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which our blocks use
HF_ACTIVATION = {"gelu": "gelu_pytorch_tanh", "relu": "relu", "silu": "silu"}
CLASSES = {"gpt2": "GPT2LMHeadModel", "gpt_neox": "GPTNeoXForCausalLM", "stablelm": "StableLmForCausalLM"}
TOKEN_IDS = {"bos_token_id": SPECIAL_TOKENS["<BOS>"], "eos_token_id": SPECIAL_TOKENS["<EOS>"]}
TOKEN_IDS["pad_token_id"] = SPECIAL_TOKENS["<PAD>"]


def hf_architecture(cfg: ModelConfig) -> str:
    """The transformers model_type that computes `cfg` exactly, or one TinyLLMError naming the
    combination and the nearest one that exports."""
    if cfg.activation == "swiglu" and cfg.pos_emb != "rope":
        raise TinyLLMError(
            f"cannot export activation swiglu with pos_emb {cfg.pos_emb}: no standard architecture adds "
            f"{cfg.pos_emb} positions to a model with a gated MLP; nearest that exports: swiglu with rope and "
            f"bias off (StableLM), or gelu/relu/silu with {cfg.pos_emb} (GPT-2)"
        )
    if cfg.activation == "swiglu" and cfg.bias:
        raise TinyLLMError(
            "cannot export activation swiglu with pos_emb rope and bias on: StableLM (the standard LayerNorm + "
            "gated-MLP architecture) has no bias in the attention output and MLP projections; nearest that "
            "exports: the same with bias off (StableLM), or gelu/relu/silu with rope and biases (GPT-NeoX)"
        )
    return {"swiglu": "stablelm"}.get(cfg.activation, "gpt_neox" if cfg.pos_emb == "rope" else "gpt2")


# --------------------------------------------------------------------------------------
# the weight-name maps: (our name, transformers' name, how)
# --------------------------------------------------------------------------------------
def weight_map(arch: str, cfg: ModelConfig, qkv_bias: bool = False) -> list[tuple[str, str, str]]:
    """Every transformers tensor of `arch` and the tinyllm tensor it comes from.

    how: "copy"; "T" (GPT-2 Conv1D, transposed); "neox_qkv" (per-head [q;k;v], q/k rows to halves);
    "q", "k", "v" (that third of our qkv; q/k rows to halves); "pos_table" (the sinusoidal table).
    Our bias names appear even for a model without biases: those export as zeros.
    qkv_bias: StableLM only, whether q/k/v have biases (use_qkv_bias).
    """
    maps = {
        "gpt2": lambda: _gpt2_map(cfg),
        "gpt_neox": lambda: _neox_map(cfg),
        "stablelm": lambda: _stablelm_map(cfg, qkv_bias),
    }
    if arch not in maps:
        raise ValueError(arch)
    return maps[arch]()


def _gpt2_map(cfg: ModelConfig) -> list[tuple[str, str, str]]:
    """GPT2LMHeadModel: Conv1D weights stored transposed; a sinusoidal table goes into wpe."""
    rows: list[tuple[str, str, str]] = []
    pos = "pos_emb.weight" if cfg.pos_emb == "learned" else "pos_table"
    rows += [("tok_emb.weight", "transformer.wte.weight", "copy"), (pos, "transformer.wpe.weight", "copy")]
    for i in range(cfg.n_layers):
        o, t = f"blocks.{i}.", f"transformer.h.{i}."
        rows += [
            (o + "ln1.weight", t + "ln_1.weight", "copy"),
            (o + "ln1.bias", t + "ln_1.bias", "copy"),
            (o + "attn.qkv.weight", t + "attn.c_attn.weight", "T"),
            (o + "attn.qkv.bias", t + "attn.c_attn.bias", "copy"),
            (o + "attn.proj.weight", t + "attn.c_proj.weight", "T"),
            (o + "attn.proj.bias", t + "attn.c_proj.bias", "copy"),
            (o + "ln2.weight", t + "ln_2.weight", "copy"),
            (o + "ln2.bias", t + "ln_2.bias", "copy"),
            (o + "ffn.fc.weight", t + "mlp.c_fc.weight", "T"),
            (o + "ffn.fc.bias", t + "mlp.c_fc.bias", "copy"),
            (o + "ffn.proj.weight", t + "mlp.c_proj.weight", "T"),
            (o + "ffn.proj.bias", t + "mlp.c_proj.bias", "copy"),
        ]
    rows += [("ln_f.weight", "transformer.ln_f.weight", "copy"), ("ln_f.bias", "transformer.ln_f.bias", "copy")]
    return rows


def _neox_map(cfg: ModelConfig) -> list[tuple[str, str, str]]:
    """GPTNeoXForCausalLM: one per-head [q;k;v] projection, sequential residual."""
    rows: list[tuple[str, str, str]] = []
    rows.append(("tok_emb.weight", "gpt_neox.embed_in.weight", "copy"))
    for i in range(cfg.n_layers):
        o, t = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        rows += [
            (o + "ln1.weight", t + "input_layernorm.weight", "copy"),
            (o + "ln1.bias", t + "input_layernorm.bias", "copy"),
            (o + "attn.qkv.weight", t + "attention.query_key_value.weight", "neox_qkv"),
            (o + "attn.qkv.bias", t + "attention.query_key_value.bias", "neox_qkv"),
            (o + "attn.proj.weight", t + "attention.dense.weight", "copy"),
            (o + "attn.proj.bias", t + "attention.dense.bias", "copy"),
            (o + "ln2.weight", t + "post_attention_layernorm.weight", "copy"),
            (o + "ln2.bias", t + "post_attention_layernorm.bias", "copy"),
            (o + "ffn.fc.weight", t + "mlp.dense_h_to_4h.weight", "copy"),
            (o + "ffn.fc.bias", t + "mlp.dense_h_to_4h.bias", "copy"),
            (o + "ffn.proj.weight", t + "mlp.dense_4h_to_h.weight", "copy"),
            (o + "ffn.proj.bias", t + "mlp.dense_4h_to_h.bias", "copy"),
        ]
    rows += [("ln_f.weight", "gpt_neox.final_layer_norm.weight", "copy")]
    rows += [("ln_f.bias", "gpt_neox.final_layer_norm.bias", "copy")]
    return rows


def _stablelm_map(cfg: ModelConfig, qkv_bias: bool) -> list[tuple[str, str, str]]:
    """StableLmForCausalLM: q/k/v apart, a gated MLP without biases."""
    rows: list[tuple[str, str, str]] = []
    rows.append(("tok_emb.weight", "model.embed_tokens.weight", "copy"))
    for i in range(cfg.n_layers):
        o, t = f"blocks.{i}.", f"model.layers.{i}."
        rows += [
            (o + "ln1.weight", t + "input_layernorm.weight", "copy"),
            (o + "ln1.bias", t + "input_layernorm.bias", "copy"),
            (o + "attn.qkv.weight", t + "self_attn.q_proj.weight", "q"),
            (o + "attn.qkv.weight", t + "self_attn.k_proj.weight", "k"),
            (o + "attn.qkv.weight", t + "self_attn.v_proj.weight", "v"),
        ]
        if qkv_bias:
            rows += [(o + "attn.qkv.bias", t + f"self_attn.{x}_proj.bias", x) for x in "qkv"]
        rows += [
            (o + "attn.proj.weight", t + "self_attn.o_proj.weight", "copy"),
            (o + "ln2.weight", t + "post_attention_layernorm.weight", "copy"),
            (o + "ln2.bias", t + "post_attention_layernorm.bias", "copy"),
            (o + "ffn.gate.weight", t + "mlp.gate_proj.weight", "copy"),
            (o + "ffn.fc.weight", t + "mlp.up_proj.weight", "copy"),
            (o + "ffn.proj.weight", t + "mlp.down_proj.weight", "copy"),
        ]
    rows += [("ln_f.weight", "model.norm.weight", "copy"), ("ln_f.bias", "model.norm.bias", "copy")]
    return rows


def _half_order(D: int) -> torch.Tensor:
    """Rotary channel order: HF channel j < D/2 is our 2j, channel D/2 + j our 2j + 1."""
    return torch.cat([torch.arange(0, D, 2), torch.arange(1, D, 2)])


def rows_to_halves(w: torch.Tensor, H: int, D: int) -> torch.Tensor:
    """q or k rows (H*D, ...) from our interleaved rotary layout to HF's rotate-half layout."""
    return w.reshape(H, D, *w.shape[1:])[:, _half_order(D)].reshape(w.shape)


def rows_to_pairs(w: torch.Tensor, H: int, D: int) -> torch.Tensor:
    """The inverse of rows_to_halves."""
    return w.reshape(H, D, *w.shape[1:])[:, torch.argsort(_half_order(D))].reshape(w.shape)


def to_hf_tensor(how: str, w: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """One of our tensors (for q/k/v: the whole qkv) -> the transformers tensor."""
    H, D = cfg.n_heads, cfg.head_dim
    if how == "copy":
        return w
    if how == "T":  # Conv1D: (in, out)
        return w.t()
    if how == "neox_qkv":  # (3C, ...) [q; k; v] -> per head [q_h; k_h; v_h]
        q, k, v = w.chunk(3)
        parts = (rows_to_halves(q, H, D), rows_to_halves(k, H, D), v)
        return torch.stack([p.reshape(H, D, *w.shape[1:]) for p in parts], dim=1).reshape(w.shape)
    part = w.chunk(3)["qkv".index(how)]  # (C, ...)
    return part if how == "v" else rows_to_halves(part, H, D)


def from_hf_tensor(how: str, w: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """The inverse of to_hf_tensor (for q/k/v: that third of our qkv)."""
    H, D = cfg.n_heads, cfg.head_dim
    if how == "copy":
        return w
    if how == "T":
        return w.t()
    if how == "neox_qkv":
        per_head = w.reshape(H, 3, D, *w.shape[1:])
        q, k, v = (per_head[:, j].reshape(H * D, *w.shape[1:]) for j in range(3))
        return torch.cat([rows_to_pairs(q, H, D), rows_to_pairs(k, H, D), v])
    return w if how == "v" else rows_to_pairs(w, H, D)


def to_hf_state_dict(cfg: ModelConfig, weights: dict) -> dict[str, torch.Tensor]:
    """Our state_dict -> transformers' (float32, contiguous; the tied head is not stored, as HF saves it)."""
    arch = hf_architecture(cfg)
    out = {}
    for ours, theirs, how in weight_map(arch, cfg):
        if ours == "pos_table":
            w = sinusoidal_table(cfg.context_length, cfg.d_model)
        elif ours in weights:
            w = weights[ours]
        elif ours.endswith(".bias"):  # a model without biases: zero biases compute the same
            w = torch.zeros(weights[ours[: -len("bias")] + "weight"].shape[0])
        else:
            raise TinyLLMError(f"checkpoint has no tensor {ours!r} (its model config says it should)")
        out[theirs] = to_hf_tensor(how, w.detach().float().cpu(), cfg).contiguous().clone()
    return out


def hf_config(cfg: ModelConfig):
    """The transformers config object for `cfg` (dropout 0: an export is for inference)."""
    import transformers

    arch = hf_architecture(cfg)
    common = dict(vocab_size=cfg.vocab_size, tie_word_embeddings=True, architectures=[CLASSES[arch]], **TOKEN_IDS)
    if arch == "gpt2":
        return transformers.GPT2Config(
            n_positions=cfg.context_length,
            n_embd=cfg.d_model,
            n_layer=cfg.n_layers,
            n_head=cfg.n_heads,
            n_inner=cfg.d_ff,
            activation_function=HF_ACTIVATION[cfg.activation],
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            layer_norm_epsilon=LAYER_NORM_EPS,
            **common,
        )
    shape = dict(
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        max_position_embeddings=cfg.context_length,
        layer_norm_eps=LAYER_NORM_EPS,
        use_parallel_residual=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    if arch == "gpt_neox":
        return transformers.GPTNeoXConfig(
            intermediate_size=cfg.d_ff,
            hidden_act=HF_ACTIVATION[cfg.activation],
            rotary_pct=1.0,
            rotary_emb_base=ROPE_BASE,
            attention_bias=True,
            **shape,
            **common,
        )
    return transformers.StableLmConfig(
        intermediate_size=swiglu_hidden(cfg.d_ff),
        hidden_act="silu",
        num_key_value_heads=cfg.n_heads,
        partial_rotary_factor=1.0,
        rope_theta=ROPE_BASE,
        use_qkv_bias=False,
        qk_layernorm=False,
        **shape,
        **common,
    )


def _transformers():
    try:
        import transformers  # noqa: F401
        from safetensors.torch import save_file
    except ImportError:
        raise TinyLLMError(
            "export --format hf needs transformers and safetensors (pip install 'tinyllm[export]')"
        ) from None
    return save_file


def write_hf_model(cfg: ModelConfig, weights: dict, directory: Path) -> str:
    """config.json, generation_config.json and model.safetensors into `directory`; -> the architecture."""
    save_file = _transformers()
    from transformers import GenerationConfig

    arch = hf_architecture(cfg)
    tensors = to_hf_state_dict(cfg, weights)
    with atomic_open(directory / "config.json", "w") as f:
        f.write(hf_config(cfg).to_json_string())
    with atomic_open(directory / "generation_config.json", "w") as f:
        f.write(GenerationConfig(**TOKEN_IDS).to_json_string())
    tmp = directory / ".model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(directory / "model.safetensors")
    return arch


def export_hf(state, out: str | Path) -> str:
    """A TrainState (checkpoint) -> a transformers directory at `out`; -> the architecture written."""
    from ..tokenizer import Tokenizer
    from .chat_template import QA_CHAT_TEMPLATE
    from .outputs import atomic_dir
    from .tokenizer_json import write_hf_tokenizer

    cfg = ModelConfig.from_dict(state.model_config)
    hf_architecture(cfg)  # refuse before writing anything
    tok = Tokenizer.from_str(state.tokenizer)
    check_vocab(cfg, tok)
    with atomic_dir(out) as tmp:
        arch = write_hf_model(cfg, state.model, tmp)
        chat = QA_CHAT_TEMPLATE if state.is_qa else None
        write_hf_tokenizer(tok, tmp, model_max_length=cfg.context_length, chat_template=chat)
    return arch


def check_vocab(cfg: ModelConfig, tok) -> None:
    if cfg.vocab_size != tok.vocab_size:
        raise TinyLLMError(
            f"the model's vocab_size {cfg.vocab_size} differs from its tokenizer's {tok.vocab_size}: "
            f"ids without a token cannot be exported"
        )


def read_config(directory: Path) -> dict:
    path = directory / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TinyLLMError(f"{directory}: no config.json (not a transformers model directory)") from None
    except ValueError as e:
        raise TinyLLMError(f"{path}: not valid JSON ({e})") from None
