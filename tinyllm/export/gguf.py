"""A checkpoint as one `.gguf` file for llama.cpp's `gpt2` architecture, written with the `gguf` package.

llama.cpp's gpt2 graph is ours for learned (or sinusoidal: a fixed table is a learned one)
positions, tanh-GELU, LayerNorm with bias, fused qkv, tied head (`output.weight` absent, llama.cpp
reuses token_embd). Tensors keep torch's (out, in) layout, stored float32: GGUF lists dimensions
innermost first, so gguf.GGUFReader shows them reversed. A model without biases writes zeros.

The tokenizer travels in the file (tokenizer.ggml.*): model "gpt2" (byte-level BPE), the tokens
as byte-level strings, merges in rank order with the alias merges of tokenizer/interop.py, token
types (control for the specials), bos/eos/pad/unk ids, and the pre-tokenizer NAME (llama.cpp
accepts only names it knows, src/llama-vocab.cpp):
  - our "gpt2" pattern -> "gpt-2": llama.cpp's regex `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|
    ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)` is r50k_base's without `\\s++$|...|\\s`, which split the same.
    llama.cpp applies merges by rank there, without the whole-pre-token rule (ignore_merges).
  - our "gpt4" pattern -> "llama-bpe" (Llama 3's; it sets ignore_merges): the same regex as
    cl100k_base except that cl100k_base's `\\s++$` is missing, so whitespace ending a text that
    has a newline inside ("x\\n  " at the very end) is one piece for us and two ("\\n", "  ")
    for llama.cpp. No llama.cpp name has cl100k_base's regex exactly (dbrx's and smaug-bpe's
    are this one too).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import TinyLLMError, warn_once
from ..model.config import ModelConfig
from ..model.positions import sinusoidal_table
from ..tokenizer.interop import hf_merges, token_string
from ..tokenizer.patterns import BYTE_OFFSET, SPECIAL_TOKENS
from .hf import LAYER_NORM_EPS, check_vocab

PRE_TOKENIZER = {"gpt2": "gpt-2", "gpt4": "llama-bpe"}
GPT4_NOTE = (
    "gguf: llama.cpp has no pre-tokenizer with the GPT-4 split pattern exactly; 'llama-bpe' (Llama 3's) is "
    "written, which splits the same except whitespace that ends a text and contains a newline ('x\\n  ' at the "
    "end: one piece here, '\\n' and '  ' in llama.cpp)"
)


def check_gguf(cfg: ModelConfig) -> None:
    """Refuse what llama.cpp's gpt2 architecture does not compute, naming what does export."""
    if cfg.pos_emb == "rope":
        raise TinyLLMError(
            f"cannot export pos_emb rope with --format gguf: llama.cpp's gpt2 architecture has learned positions; "
            f"nearest that exports: pos_emb learned or sinusoidal with gelu, or this model with --format hf "
            f"({'StableLM' if cfg.activation == 'swiglu' else 'GPT-NeoX'})"
        )
    if cfg.activation != "gelu":
        raise TinyLLMError(
            f"cannot export activation {cfg.activation} with --format gguf: llama.cpp's gpt2 architecture uses "
            f"GELU; nearest that exports: activation gelu, or this model with --format hf"
        )


def gguf_tensors(cfg: ModelConfig, weights: dict) -> dict[str, np.ndarray]:
    """llama.cpp gpt2 tensor name -> float32 array, in torch's (out, in) layout."""
    names = {"token_embd.weight": "tok_emb.weight", "position_embd.weight": "pos_emb.weight"}
    for i in range(cfg.n_layers):
        for theirs, ours in (
            ("attn_norm", "ln1"),
            ("attn_qkv", "attn.qkv"),
            ("attn_output", "attn.proj"),
            ("ffn_norm", "ln2"),
            ("ffn_up", "ffn.fc"),
            ("ffn_down", "ffn.proj"),
        ):
            for kind in ("weight", "bias"):
                names[f"blk.{i}.{theirs}.{kind}"] = f"blocks.{i}.{ours}.{kind}"
    names.update({"output_norm.weight": "ln_f.weight", "output_norm.bias": "ln_f.bias"})
    out = {}
    for theirs, ours in names.items():
        if ours == "pos_emb.weight" and cfg.pos_emb == "sinusoidal":
            w = sinusoidal_table(cfg.context_length, cfg.d_model)
        elif ours in weights:
            w = weights[ours]
        else:  # no biases: zeros compute the same
            w = torch.zeros(weights[ours[: -len("bias")] + "weight"].shape[0])
        out[theirs] = w.detach().float().cpu().contiguous().numpy()
    return out


def export_gguf(state, out: str | Path, name: str = "tinyllm") -> None:
    """A TrainState (checkpoint) -> one .gguf file at `out` (written to a temp file, then renamed)."""
    try:
        import gguf
    except ImportError:
        raise TinyLLMError("export --format gguf needs the gguf package (pip install 'tinyllm[export]')") from None
    from ..tokenizer import Tokenizer
    from .chat_template import QA_CHAT_TEMPLATE

    cfg = ModelConfig.from_dict(state.model_config)
    check_gguf(cfg)
    tok = Tokenizer.from_str(state.tokenizer)
    check_vocab(cfg, tok)
    if tok.pattern == "gpt4":
        warn_once(GPT4_NOTE)
    out = Path(out)
    if out.is_dir():
        raise TinyLLMError(f"--out {out}: is a directory; --format gguf writes one file (e.g. {out / 'model.gguf'})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        w = gguf.GGUFWriter(str(tmp), arch="gpt2")
        w.add_name(name)
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        w.add_context_length(cfg.context_length)
        w.add_embedding_length(cfg.d_model)
        w.add_feed_forward_length(cfg.d_ff)
        w.add_block_count(cfg.n_layers)
        w.add_head_count(cfg.n_heads)
        w.add_layer_norm_eps(LAYER_NORM_EPS)
        add_tokenizer(w, gguf, tok, QA_CHAT_TEMPLATE if state.is_qa else None)
        for tensor_name, array in gguf_tensors(cfg, state.model).items():
            w.add_tensor(tensor_name, array)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def add_tokenizer(w, gguf, tok, chat_template: str | None) -> None:
    strings = list(SPECIAL_TOKENS) + [token_string(tok.token_bytes(i)) for i in range(BYTE_OFFSET, tok.vocab_size)]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(PRE_TOKENIZER[tok.pattern])
    w.add_token_list(strings)
    w.add_token_types([gguf.TokenType.CONTROL] * BYTE_OFFSET + [gguf.TokenType.NORMAL] * (tok.vocab_size - BYTE_OFFSET))
    w.add_token_merges([f"{strings[a]} {strings[b]}" for a, b in hf_merges(tok)])
    w.add_bos_token_id(tok.bos_id)
    w.add_eos_token_id(tok.eos_id)
    w.add_pad_token_id(tok.pad_id)
    w.add_unk_token_id(tok.unk_id)
    w.add_add_bos_token(False)  # our encode adds no <BOS>; a prompt that wants one writes it
    w.add_add_eos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)
