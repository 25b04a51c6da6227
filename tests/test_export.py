"""`tinyllm export`: what transformers, tokenizers, tiktoken, gguf and llama.cpp load from our files
computes what tinyllm computes (tinyllm/export/).

Every exportable configuration on a small random-weight model with odd shapes (head size 12, SwiGLU
hidden 53, context 40): transformers' logits equal ours over the whole context (<= 1e-4, float32),
its greedy generate equals ours token for token, and export -> import gives identical logits.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyllm.data.qa import PAIR_TEMPLATE, format_prompt
from tinyllm.errors import TinyLLMError
from tinyllm.export import export_checkpoint, export_tokenizer, import_hf
from tinyllm.generate import generate_ids
from tinyllm.model import ModelConfig, TinyLLM
from tinyllm.tokenizer import Tokenizer
from tinyllm.train.checkpoint import TrainState, load_checkpoint

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may download
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

# a text with everything the split patterns treat specially: specials, emoji (ZWJ, skin tone, flags),
# CJK, other scripts, contractions, digit runs, long whitespace, CRLF, tabs
MIXED = (
    "<BOS>Hello, World! It's 2024; we'll see: I'd've THEY'RE ſ right.<EOS>\n"
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷  中文测试，日本語のテキスト、한국어 텍스트\n"
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी ٣٤٥ ²³ 1234567890 3.14159\r\n"
    + " " * 40
    + "x\t\ttabs\n\n\n   indented <PAD><UNK> and <EOS<BOS>> done"
)
# the pieces of the tokenizer tests' hypothesis text (test_tokenizer_native.TRICKY), lone surrogates
# left out: a Hugging Face tokenizer takes Rust strings, which cannot hold them. Random characters
# are those assigned in Python's Unicode tables (3.11: Unicode 14): letters assigned since then are
# letters to the `regex` module's newer tables, which our splitter follows, but not to HF's Oniguruma
# (found: U+323B0, CJK Extension, then "'s"), so such text splits differently there.
PIECES = list("aZsStTdDmMlLvVeErR'’ 0123456789.,;:!?-_()<>/\\\"#\t\n\r\x0b\x0c") + [
    *"\u017f\u00a0\u1680\u2000\u2028\u2029\u202f\u3000\x85\x1céßǅ中文ア한жωאعकि\u0301\u200d٣²Ⅻ½😀👍🏽\U0001f1eb\ufffd\x00\uffff",
    *("<EOS>", "<BOS>", "<PAD", "UNK>", "'s", "'LL", "'Ve", "\r\n", "  ", "\n\n", "123456", "2024", "1234", " " * 17),
]
no_surrogates = st.characters(blacklist_categories=("Cs", "Cn"))
mixed_text = st.lists(st.one_of(st.sampled_from(PIECES), no_surrogates), max_size=40).map("".join)

# (pos_emb, activation, bias) -> the architecture it exports as
EXPORTABLE = [
    *[(p, a, b, "gpt2") for p in ("learned", "sinusoidal") for a in ("gelu", "relu", "silu") for b in (True, False)],
    *[("rope", a, b, "gpt_neox") for a in ("gelu", "relu", "silu") for b in (True, False)],
    ("rope", "swiglu", False, "stablelm"),
]
REFUSED = [
    ("learned", "swiglu", True, r"swiglu with pos_emb learned: .*nearest that exports: swiglu with rope and bias off"),
    ("sinusoidal", "swiglu", False, r"swiglu with pos_emb sinusoidal: .*nearest that exports"),
    ("rope", "swiglu", True, r"swiglu with pos_emb rope and bias on: StableLM .* has no bias .*nearest that exports"),
]


def _corpus() -> list[str]:
    from pybible.Bible import Bible

    return list(Bible)[:1500] + [MIXED] * 3 + ["中文测试 日本語 한국어 😀👍🏽 ٣٤٥ 1234 \n\n   x  "] * 20


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def tok(request):
    return Tokenizer.train(_corpus(), vocab_size=520, pattern=request.param, show_progress=False)


def random_model(cfg: ModelConfig, seed: int = 0) -> TinyLLM:
    """Weights large enough that logits are spread out (greedy decoding has no near-ties)."""
    torch.manual_seed(seed)
    model = TinyLLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm_gain = "ln" in name and name.endswith("weight")
            p.copy_(torch.randn_like(p) * (0.1 if norm_gain else 0.3) + (1.0 if norm_gain else 0.0))
    return model


def checkpoint(tmp_path, tok, pos="learned", act="gelu", bias=True, is_qa=False, name="model.pt", seed=0):
    cfg = ModelConfig(
        vocab_size=tok.vocab_size,
        context_length=40,
        d_model=48,
        n_layers=2,
        n_heads=4,
        d_ff=80,
        dropout=0.0,
        pos_emb=pos,
        activation=act,
        bias=bias,
    )
    model = random_model(cfg, seed)
    path = tmp_path / name
    TrainState(model=model.state_dict(), model_config=cfg.to_dict(), tokenizer=tok.to_str(), is_qa=is_qa).save(path)
    return model, path


def hf_model(directory):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(directory, output_loading_info=True)
    assert not any(info.values()), info  # every tensor used, none missing or left over
    return model.eval()


def max_logit_diff(ours: TinyLLM, theirs, ids: torch.Tensor) -> float:
    with torch.no_grad():
        a = ours(ids)[0]
        b = theirs(ids).logits
    return (a - b).abs().max().item()


@pytest.mark.parametrize("pos,act,bias,arch", EXPORTABLE)
def test_transformers_computes_what_we_compute(tmp_path, tok, pos, act, bias, arch):
    model, ckpt = checkpoint(tmp_path, tok, pos, act, bias)
    out = tmp_path / "hf"
    export_checkpoint(ckpt, "hf", out)
    hf = hf_model(out)
    assert hf.config.model_type == arch
    T = model.config.context_length
    ids = torch.randint(0, tok.vocab_size, (3, T))  # the whole context
    assert max_logit_diff(model, hf, ids) <= 1e-4

    prompt = tok.encode("And God said")
    ours = list(generate_ids(model, prompt, T - len(prompt), temperature=0.0))  # stops before <EOS>
    theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=T - len(prompt), do_sample=False)[0, len(prompt) :]
    theirs = theirs.tolist()
    assert theirs[: len(ours)] == ours and (len(theirs) == len(ours) or theirs[len(ours)] == tok.eos_id)
    assert len(ours) >= 10  # the comparison covered a real continuation

    back = tmp_path / "back.pt"
    import_hf(out, back)
    again, _, _ = load_checkpoint(back)
    with torch.no_grad():
        assert torch.equal(again(ids)[0], model(ids)[0])
    assert again.config.pos_emb == pos and again.config.activation == act and again.config.bias == bias


@pytest.mark.parametrize("pos,act,bias,message", REFUSED)
def test_refuses_what_no_standard_architecture_computes(tmp_path, tok, pos, act, bias, message):
    _, ckpt = checkpoint(tmp_path, tok, pos, act, bias)
    with pytest.raises(TinyLLMError, match=message):
        export_checkpoint(ckpt, "hf", tmp_path / "hf")
    assert not (tmp_path / "hf").exists() and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def _hf_tokenizers(tmp_path, tok):
    export_tokenizer(tok, "hf", tmp_path / "tok")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "tok")
    fast = tokenizers.Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    return auto, fast


def test_exported_tokenizer_gives_our_ids(tmp_path, tok):
    auto, fast = _hf_tokenizers(tmp_path, tok)
    ids = tok.encode(MIXED)
    assert fast.encode(MIXED).ids == ids
    assert auto.encode(MIXED) == ids and auto(MIXED)["input_ids"] == ids
    assert auto.decode(ids) == MIXED == fast.decode(ids, skip_special_tokens=False)
    assert (auto.pad_token_id, auto.unk_token_id, auto.bos_token_id, auto.eos_token_id) == (0, 1, 2, 3)
    assert sum(i >= 260 for i in ids) > 40  # merges were used, not only bytes


def test_exported_tokenizer_gives_our_ids_on_random_text(tmp_path_factory, tok):
    auto, fast = _hf_tokenizers(tmp_path_factory.mktemp("tok"), tok)

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=mixed_text)
    def check(text):
        ids = tok.encode(text)
        assert fast.encode(text).ids == ids
        assert auto.encode(text) == ids

    check()


def test_alias_merges_make_hf_encode_like_tiktoken(tmp_path):
    """A token with two splits: "abc" is (ab, c), but in "abcx" the pair (b, c) joins first and
    tiktoken's rule then joins (a, bc) into "abc"; HF needs that alias merge listed to do the same."""
    a, b, c = (ord(ch) + 4 for ch in "abc")
    tok = Tokenizer([(b, c), (a, b), (261, c)])  # bc = 260, ab = 261, abc = 262
    assert tok.encode("abcx") == [262, ord("x") + 4]
    auto, fast = _hf_tokenizers(tmp_path, tok)
    assert fast.encode("abcx").ids == auto.encode("abcx") == tok.encode("abcx")


def test_tokenizer_json_round_trip(tmp_path, tok):
    export_tokenizer(tok, "hf", tmp_path / "tok")
    back = Tokenizer.from_hf_json(tmp_path / "tok" / "tokenizer.json")
    assert back == tok and back.pattern == tok.pattern  # the very merges, not only the same ids


def test_tiktoken_files(tmp_path, tok):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    written = export_tokenizer(tok, "tiktoken", tmp_path / "tok.tiktoken")
    assert [p.name for p in written] == ["tok.tiktoken", "tok.tiktoken.json"]
    meta = json.loads((tmp_path / "tok.tiktoken.json").read_text())
    enc = tiktoken.Encoding(mergeable_ranks=load_tiktoken_bpe(str(tmp_path / "tok.tiktoken")), **meta)
    assert enc.encode(MIXED, allowed_special="all") == tok.encode(MIXED)
    assert enc.n_vocab == tok.vocab_size
    for source in (tmp_path / "tok.tiktoken", enc):
        back = Tokenizer.from_tiktoken(source)
        assert [back.token_bytes(i) for i in range(back.vocab_size)] == [
            tok.token_bytes(i) for i in range(tok.vocab_size)
        ]
        assert back.encode(MIXED) == tok.encode(MIXED) and back.pattern == tok.pattern


def test_from_tiktoken_refuses_what_differs():
    tiktoken = pytest.importorskip("tiktoken")
    tok = Tokenizer.train(["some text, some more text"] * 5, vocab_size=270, show_progress=False)
    enc = tok.to_tiktoken()
    with pytest.raises(TinyLLMError, match=r"special tokens <\|endoftext\|>=0 differ from tinyllm's <PAD>=0"):
        Tokenizer.from_tiktoken(enc, special_tokens={"<|endoftext|>": 0})
    with pytest.raises(TinyLLMError, match=r"split pattern '\\\\w\+' is not one of tinyllm's"):
        Tokenizer.from_tiktoken(enc, pat_str=r"\w+")
    foreign = tiktoken.Encoding(
        "f", pat_str=tok.pattern_regex, mergeable_ranks={bytes([b]): b for b in range(256)}, special_tokens={}
    )
    with pytest.raises(TinyLLMError, match=r"special tokens none differ"):
        Tokenizer.from_tiktoken(foreign)


def test_qa_checkpoint_chat_template(tmp_path, tok):
    _, ckpt = checkpoint(tmp_path, tok, is_qa=True)
    export_checkpoint(ckpt, "hf", tmp_path / "hf")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    one = [{"role": "user", "content": " Who are you? "}]
    ids = auto.apply_chat_template(one, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids == tok.encode(format_prompt("Who are you?"))
    turns = one + [{"role": "assistant", "content": "A model."}, {"role": "user", "content": "Why?"}]
    ids = auto.apply_chat_template(turns, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    pair = PAIR_TEMPLATE.format(question="Who are you?", answer="A model.")
    assert ids == tok.encode(pair) + tok.encode(format_prompt("Why?"))
    # a plain checkpoint has none
    _, plain = checkpoint(tmp_path, tok, name="plain.pt")
    export_checkpoint(plain, "hf", tmp_path / "hf2")
    assert "chat_template" not in json.loads((tmp_path / "hf2" / "tokenizer_config.json").read_text())


def test_generation_config_and_dropout(tmp_path, tok):
    _, ckpt = checkpoint(tmp_path, tok)
    export_checkpoint(ckpt, "hf", tmp_path / "hf")
    gen = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (2, 3, 0)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["resid_pdrop"] == cfg["embd_pdrop"] == cfg["attn_pdrop"] == 0.0 and cfg["tie_word_embeddings"]


def test_export_replaces_a_directory_whole(tmp_path, tok, monkeypatch):
    _, ckpt = checkpoint(tmp_path, tok)
    out = tmp_path / "hf"
    export_checkpoint(ckpt, "hf", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import tinyllm.export.tokenizer_json as tj

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tj, "hf_tokenizer_json", broken)
    with pytest.raises(OSError, match="disk full"):
        export_checkpoint(ckpt, "hf", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old export, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "model.pt"]  # no temp directory left


# --------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------
def expected_gguf_tensors(model: TinyLLM) -> dict[str, np.ndarray]:
    """Written out independently of tinyllm/export/gguf.py: llama.cpp's gpt2 names, torch layout."""
    cfg, sd = model.config, model.state_dict()
    pos = sd["pos_emb.weight"] if cfg.pos_emb == "learned" else model.pos_table
    out = {"token_embd.weight": sd["tok_emb.weight"], "position_embd.weight": pos}
    for i in range(cfg.n_layers):
        b = f"blocks.{i}."
        for gg, ours in [("attn_norm", "ln1"), ("attn_qkv", "attn.qkv"), ("attn_output", "attn.proj")]:
            out[f"blk.{i}.{gg}.weight"] = sd[b + ours + ".weight"]
            out[f"blk.{i}.{gg}.bias"] = sd.get(b + ours + ".bias", torch.zeros(sd[b + ours + ".weight"].shape[0]))
        for gg, ours in [("ffn_norm", "ln2"), ("ffn_up", "ffn.fc"), ("ffn_down", "ffn.proj")]:
            out[f"blk.{i}.{gg}.weight"] = sd[b + ours + ".weight"]
            out[f"blk.{i}.{gg}.bias"] = sd.get(b + ours + ".bias", torch.zeros(sd[b + ours + ".weight"].shape[0]))
    out["output_norm.weight"] = sd["ln_f.weight"]
    out["output_norm.bias"] = sd.get("ln_f.bias", torch.zeros(cfg.d_model))
    return {k: v.float().numpy() for k, v in out.items()}


@pytest.mark.parametrize("pos,bias", [("learned", True), ("sinusoidal", False)])
def test_gguf_read_back(tmp_path, tok, pos, bias):
    gguf = pytest.importorskip("gguf")
    model, ckpt = checkpoint(tmp_path, tok, pos, "gelu", bias, is_qa=True)
    export_checkpoint(ckpt, "gguf", tmp_path / "m.gguf")
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))

    expected = expected_gguf_tensors(model)
    assert [t.name for t in reader.tensors] == list(expected)
    for t in reader.tensors:
        want = expected[t.name]
        assert list(t.shape) == list(reversed(want.shape))  # GGUF lists dimensions innermost first
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert np.array_equal(np.asarray(t.data).reshape(want.shape), want), t.name

    def value(key):
        field = reader.fields[key]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            return [field.contents(i) for i in range(len(field.data))]
        return field.contents()

    from tinyllm.export.chat_template import QA_CHAT_TEMPLATE
    from tinyllm.tokenizer.interop import hf_merges, token_string

    strings = ["<PAD>", "<UNK>", "<BOS>", "<EOS>"] + [
        token_string(tok.token_bytes(i)) for i in range(4, tok.vocab_size)
    ]
    cfg = model.config
    meta = {
        "general.architecture": "gpt2",
        "general.name": "model",
        "general.file_type": 0,
        "gpt2.context_length": cfg.context_length,
        "gpt2.embedding_length": cfg.d_model,
        "gpt2.feed_forward_length": cfg.d_ff,
        "gpt2.block_count": cfg.n_layers,
        "gpt2.attention.head_count": cfg.n_heads,
        "gpt2.attention.layer_norm_epsilon": pytest.approx(1e-5),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": {"gpt4": "llama-bpe", "gpt2": "gpt-2"}[tok.pattern],
        "tokenizer.ggml.tokens": strings,
        "tokenizer.ggml.token_type": [3] * 4 + [1] * (tok.vocab_size - 4),
        "tokenizer.ggml.merges": [f"{strings[a]} {strings[b]}" for a, b in hf_merges(tok)],
        "tokenizer.ggml.bos_token_id": 2,
        "tokenizer.ggml.eos_token_id": 3,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.unknown_token_id": 1,
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.ggml.add_eos_token": False,
        "tokenizer.chat_template": QA_CHAT_TEMPLATE,
    }
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]  # GGUF.* is the file header
    assert sorted(keys) == sorted(meta)
    for key, want in meta.items():
        assert value(key) == want, key


@pytest.mark.parametrize(
    "pos,act,message",
    [("rope", "gelu", "pos_emb rope with --format gguf"), ("learned", "relu", "activation relu with --format gguf")],
)
def test_gguf_refuses(tmp_path, tok, pos, act, message):
    pytest.importorskip("gguf")
    _, ckpt = checkpoint(tmp_path, tok, pos, act)
    with pytest.raises(TinyLLMError, match=message + r".*nearest that exports"):
        export_checkpoint(ckpt, "gguf", tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def _llama_cpp():
    if os.environ.get("TINYLLM_TEST_LLAMA_CPP") == "1":
        import llama_cpp  # required: a missing build is a failure
    else:
        llama_cpp = pytest.importorskip(
            "llama_cpp", reason="llama-cpp-python not installed (TINYLLM_TEST_LLAMA_CPP=1 requires it)"
        )
    return llama_cpp


def test_llama_cpp_computes_what_we_compute(tmp_path, tok):
    """llama.cpp itself loads the .gguf: its tokenization of the mixed text and its greedy continuation
    equal ours, token for token (runs where llama-cpp-python is installed; it builds llama.cpp from source)."""
    llama_cpp = _llama_cpp()
    model, ckpt = checkpoint(tmp_path, tok, "learned", "gelu", True)
    export_checkpoint(ckpt, "gguf", tmp_path / "m.gguf")
    # float32 KV cache (the default f16 one rounds keys and values)
    llm = llama_cpp.Llama(
        str(tmp_path / "m.gguf"), n_ctx=40, logits_all=True, verbose=False, n_threads=1, type_k=0, type_v=0
    )
    text = MIXED.replace("\r\n", "\n")
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok.encode(text)

    prompt = tok.encode("And God said")
    n = model.config.context_length - len(prompt)
    ours = list(generate_ids(model, prompt, n, temperature=0.0, eos_id=None))
    llm.eval(prompt)
    theirs = []
    for _ in range(n):
        theirs.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        if len(theirs) < n:
            llm.eval([theirs[-1]])
    assert theirs == ours
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ours[:-1]]))[0][0].numpy()
    assert np.abs(np.array(llm.scores[: llm.n_tokens]) - logits).max() < 0.02  # ggml's GELU is a float16 table


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------
def test_cli_export_and_errors(tmp_path, run_cli):
    tok = Tokenizer.train(_corpus()[:300], vocab_size=300, show_progress=False)
    tok.save(tmp_path / "tok.txt")
    _, ckpt = checkpoint(tmp_path, tok, "learned", "swiglu")
    r = run_cli("export", "--checkpoint", ckpt, "--format", "hf", "--out", tmp_path / "hf")
    assert r.returncode == 2 and r.stderr.startswith("error: cannot export activation swiglu with pos_emb learned")
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "hf").exists()
    r = run_cli("export", "--checkpoint", tmp_path / "nope.pt", "--format", "gguf", "--out", tmp_path / "m.gguf")
    assert r.returncode == 2 and "nope.pt: no such checkpoint" in r.stderr
    r = run_cli("tokenizer", "export", "--tokenizer", tmp_path / "tok.txt", "--format", "hf", "--out", tmp_path / "th")
    assert r.returncode == 0, r.stderr
    assert transformers.AutoTokenizer.from_pretrained(tmp_path / "th").encode(MIXED) == tok.encode(MIXED)
    r = run_cli(
        "tokenizer",
        "export",
        "--tokenizer",
        tmp_path / "tok.txt",
        "--format",
        "tiktoken",
        "--out",
        tmp_path / "t.tiktoken",
    )
    assert r.returncode == 0 and Tokenizer.from_tiktoken(tmp_path / "t.tiktoken").encode(MIXED) == tok.encode(MIXED)


def test_llama_cpp_gpt4_pattern_difference_is_what_the_export_warns(tmp_path):
    """The one known split difference, measured: llama.cpp's 'llama-bpe' lacks cl100k_base's `\\s++$`,
    so whitespace with a newline that ends a text is one piece for us and several for llama.cpp."""
    llama_cpp = _llama_cpp()
    from tinyllm.export.gguf import GPT4_NOTE

    assert "'x\\n  ' at the end: one piece here, '\\n' and '  ' in llama.cpp" in GPT4_NOTE  # what the export warns
    tok = Tokenizer.train(["word\n  "] * 200 + ["some text here"] * 50, vocab_size=270, show_progress=False)
    _, ckpt = checkpoint(tmp_path, tok)
    export_checkpoint(ckpt, "gguf", tmp_path / "m.gguf")
    llm = llama_cpp.Llama(str(tmp_path / "m.gguf"), n_ctx=40, verbose=False, n_threads=1)
    same, differs = "word\n  x", "word\n  "
    assert llm.tokenize(same.encode(), add_bos=False, special=True) == tok.encode(same)
    assert tok.token_bytes(tok.encode(differs)[-1]) == b"\n  "
    assert llm.tokenize(differs.encode(), add_bos=False, special=True) != tok.encode(differs)
