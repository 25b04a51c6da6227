"""A local transformers directory -> a tinyllm checkpoint (`tinyllm import --from hf DIR --out CKPT`).

Reads config.json, model.safetensors (or its sharded index) and tokenizer.json with json and
safetensors only: nothing is downloaded and transformers is not needed. Accepted: what
`tinyllm export --format hf` writes, and any GPT-2 / GPT-NeoX / StableLM model whose computation
is one of ours (the table in hf.py, read backwards), with a tokenizer tinyllm represents exactly
(Tokenizer.from_hf_json). Every other setting is refused naming the field and what tinyllm needs.

What comes back: pos_emb "sinusoidal" when GPT-2's wpe is exactly our sinusoidal table, else
"learned"; bias off when every bias tensor is exactly zero (that computes the same); for StableLM,
the largest d_ff whose SwiGLU hidden size (2/3 of it, rounded) is intermediate_size; the Q&A flag
when tokenizer_config.json's chat_template is TinyLLM's Q&A template. The checkpoint has no
optimizer state: `generate`, `chat`, `export` and `train --init_from` take it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import TinyLLMError
from ..model.config import ModelConfig
from ..model.positions import sinusoidal_table
from .hf import HF_ACTIVATION, LAYER_NORM_EPS, ROPE_BASE, from_hf_tensor, read_config, weight_map

ACTIVATION_OF = {v: k for k, v in HF_ACTIVATION.items()} | {"gelu_new": "gelu", "swish": "silu"}
# tensors a transformers file may hold that carry nothing of the model (buffers, the tied head)
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", "lm_head.weight", "embed_out.weight")


def check_local_dir(path: str | Path) -> Path:
    """The directory, or a TinyLLMError; a hub id is never looked up."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.exists():
        raise TinyLLMError(f"{p}: is a file; tinyllm import reads a transformers model directory")
    hint = ""
    if "/" in str(path) and not str(path).startswith((".", "/")) and len(Path(path).parts) == 2:
        hint = f" (a hub id? tinyllm never downloads: fetch it first, e.g. hf download {path} --local-dir DIR)"
    raise TinyLLMError(f"{path}: no such directory{hint}")


def _need(cond: bool, where: str, field: str, value, wanted: str) -> None:
    if not cond:
        raise TinyLLMError(f"{where}: {field} is {value!r}; tinyllm computes only {wanted}")


def _rope(hf: dict, where: str) -> None:
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    theta = rope.get("rope_theta", hf.get("rope_theta", hf.get("rotary_emb_base", ROPE_BASE)))
    partial = rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", hf.get("rotary_pct", 1.0)))
    _need(
        rope.get("rope_type", rope.get("type", "default")) == "default",
        where,
        "rope type",
        rope.get("rope_type"),
        "default",
    )
    _need(float(theta) == ROPE_BASE, where, "rope theta", theta, f"{ROPE_BASE:g}")
    _need(float(partial) == 1.0, where, "the rotary fraction", partial, "1.0 (every channel rotated)")


def model_config(hf: dict, where: str) -> tuple[str, dict]:
    """(arch, ModelConfig fields but bias/pos_emb-from-weights) from a config.json dict."""
    arch = hf.get("model_type")
    if arch not in ("gpt2", "gpt_neox", "stablelm"):
        raise TinyLLMError(f"{where}: model_type {arch!r} is not one tinyllm imports (gpt2, gpt_neox, stablelm)")
    if arch == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        eps = hf.get("layer_norm_epsilon", 1e-5)
        _need(hf.get("scale_attn_weights", True), where, "scale_attn_weights", False, "attention scaled by 1/sqrt(d)")
        _need(not hf.get("scale_attn_by_inverse_layer_idx"), where, "scale_attn_by_inverse_layer_idx", True, "False")
        _need(not hf.get("add_cross_attention"), where, "add_cross_attention", True, "a decoder without it")
        C = hf.get("n_embd", 768)
        fields = dict(
            vocab_size=hf.get("vocab_size"),
            context_length=hf.get("n_positions", 1024),
            d_model=C,
            n_layers=hf.get("n_layer", 12),
            n_heads=hf.get("n_head", 12),
            d_ff=hf.get("n_inner") or 4 * C,
        )
    else:
        act = hf.get("hidden_act", "gelu" if arch == "gpt_neox" else "silu")
        eps = hf.get("layer_norm_eps", 1e-5)
        _need(not hf.get("use_parallel_residual", arch == "gpt_neox"), where, "use_parallel_residual", True, "False")
        _rope(hf, where)
        inner = hf.get("intermediate_size")
        if arch == "stablelm":
            _need(act in ("silu", "swish"), where, "hidden_act", act, "silu (SwiGLU)")
            _need(not hf.get("qk_layernorm"), where, "qk_layernorm", True, "False")
            kv = hf.get("num_key_value_heads", hf.get("num_attention_heads"))
            _need(kv == hf.get("num_attention_heads"), where, "num_key_value_heads", kv, "one per attention head")
            inner = max(d for d in range(3 * inner // 2 - 2, 3 * inner // 2 + 3) if round(2 * d / 3) == inner)
        fields = dict(
            vocab_size=hf.get("vocab_size"),
            context_length=hf.get("max_position_embeddings"),
            d_model=hf.get("hidden_size"),
            n_layers=hf.get("num_hidden_layers"),
            n_heads=hf.get("num_attention_heads"),
            d_ff=inner,
        )
    _need(abs(float(eps) - LAYER_NORM_EPS) < 1e-12, where, "the LayerNorm epsilon", eps, f"{LAYER_NORM_EPS:g}")
    if arch == "stablelm":
        fields["activation"] = "swiglu"
    else:
        _need(act in ACTIVATION_OF, where, "the activation", act, ", ".join(sorted(ACTIVATION_OF)))
        fields["activation"] = ACTIVATION_OF[act]
    fields["pos_emb"] = "learned" if arch == "gpt2" else "rope"
    return arch, fields


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or the shards its index lists."""
    from safetensors.torch import load_file

    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [directory / s for s in shards]
    else:
        raise TinyLLMError(f"{directory}: no model.safetensors (tinyllm reads safetensors weights only)")
    weights = {}
    for f in files:
        try:
            weights.update(load_file(str(f)))
        except Exception as e:  # truncated or foreign file: safetensors raises its own error types
            raise TinyLLMError(f"{f}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    return weights


def import_hf(directory: str | Path, out: str | Path) -> ModelConfig:
    """Convert and save; -> the model config written."""
    from ..model import TinyLLM
    from ..tokenizer import Tokenizer
    from ..train.checkpoint import TrainState
    from .chat_template import QA_CHAT_TEMPLATE

    d = check_local_dir(directory)
    arch, fields = model_config(read_config(d), str(d / "config.json"))
    if not (d / "tokenizer.json").is_file():
        raise TinyLLMError(f"{d}: no tokenizer.json (a tinyllm checkpoint carries its tokenizer)")
    tok = Tokenizer.from_hf_json(d / "tokenizer.json")
    if tok.vocab_size != fields["vocab_size"]:
        raise TinyLLMError(
            f"{d}: config.json vocab_size {fields['vocab_size']} differs from tokenizer.json's {tok.vocab_size}"
        )
    hf = read_weights(d)
    if arch == "gpt2" and "transformer.wte.weight" not in hf and "wte.weight" in hf:  # saved from GPT2Model
        hf = {f"transformer.{k}": v for k, v in hf.items()}
    biases = [k for k in hf if k.endswith(".bias") and not k.endswith(IGNORED_SUFFIXES)]
    fields["bias"] = any(bool(hf[k].count_nonzero()) for k in biases)
    wpe = hf.get("transformer.wpe.weight")
    if wpe is not None and torch.equal(wpe.float(), sinusoidal_table(*wpe.shape)):
        fields["pos_emb"] = "sinusoidal"
    cfg = ModelConfig(dropout=0.0, **fields)
    model = TinyLLM(cfg)
    weights = _our_weights(arch, cfg, hf, model.state_dict(), str(d))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise TinyLLMError(f"{d}: weights do not fit config.json ({str(e).splitlines()[-1].strip()[:160]})") from None
    tok_cfg = d / "tokenizer_config.json"
    chat = json.loads(tok_cfg.read_text(encoding="utf-8")).get("chat_template") if tok_cfg.is_file() else None
    TrainState(
        model=model.state_dict(), model_config=cfg.to_dict(), tokenizer=tok.to_str(), is_qa=chat == QA_CHAT_TEMPLATE
    ).save(out)
    return cfg


def _our_weights(arch: str, cfg: ModelConfig, hf: dict, like: dict, where: str) -> dict[str, torch.Tensor]:
    """transformers tensors -> our state_dict, by hf.weight_map read backwards."""
    qkv_bias = any(k.endswith("self_attn.q_proj.bias") for k in hf)
    ours: dict[str, torch.Tensor] = {}
    thirds: dict[str, dict[str, torch.Tensor]] = {}
    used = set()
    for name, theirs, how in weight_map(arch, cfg, qkv_bias):
        if name == "pos_table":
            used.add(theirs)
            continue
        if theirs not in hf:
            if theirs.endswith(".bias"):  # e.g. attention_bias false: no bias is a zero bias
                continue
            raise TinyLLMError(f"{where}: model.safetensors has no tensor {theirs!r}")
        used.add(theirs)
        if name.endswith(".bias") and not cfg.bias:
            continue  # all zero (that is why bias is off)
        w = from_hf_tensor(how, hf[theirs].float(), cfg)
        if how in ("q", "k", "v"):
            thirds.setdefault(name, {})[how] = w
        else:
            ours[name] = w
    for name, parts in thirds.items():
        ours[name] = torch.cat([parts["q"], parts["k"], parts["v"]])
    extra = sorted(k for k in hf if k not in used and not k.endswith(IGNORED_SUFFIXES))
    if extra:
        raise TinyLLMError(f"{where}: tensor {extra[0]!r} has no counterpart in tinyllm's model")
    _check_tied_head(arch, hf, ours["tok_emb.weight"], where)
    for k, v in like.items():  # biases the architecture lacks (StableLM's MLP, o_proj): zeros
        if k not in ours and k.endswith(".bias"):
            ours[k] = torch.zeros_like(v)
    ours["lm_head.weight"] = ours["tok_emb.weight"]
    return ours


def _check_tied_head(arch: str, hf: dict, emb: torch.Tensor, where: str) -> None:
    """Our head is the embedding: an untied head must equal it."""
    for key in ("lm_head.weight", "embed_out.weight"):
        if key in hf and not torch.equal(hf[key].float(), emb):
            raise TinyLLMError(f"{where}: {key} differs from the token embedding; tinyllm's head is tied to it")
