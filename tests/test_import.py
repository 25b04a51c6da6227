"""`tinyllm import --from hf DIR`: a local transformers directory becomes a checkpoint that computes
what the transformers model computes, and what tinyllm cannot represent exactly is refused naming
what differs (tinyllm/export/hf_import.py, Tokenizer.from_hf_json)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from tinyllm.errors import TinyLLMError
from tinyllm.export import export_checkpoint, export_tokenizer, import_hf
from tinyllm.tokenizer import Tokenizer
from tinyllm.train.checkpoint import TrainState, load_checkpoint

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

MIXED = "<BOS>Hello, World! It's 2024 😀👍🏽 中文测试 ٣٤٥\n\n   x<EOS>"


@pytest.fixture(scope="module")
def tok():
    from pybible.Bible import Bible

    return Tokenizer.train(list(Bible)[:1500] + [MIXED] * 5, vocab_size=400, show_progress=False)


def _randomize(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = "ln" in name.lower() or "norm" in name
            p.copy_(torch.randn_like(p) * (0.1 if gain else 0.3) + (1.0 if gain and name.endswith("weight") else 0.0))
    return model.eval()


@pytest.fixture
def gpt2_dir(tmp_path, tok):
    """A GPT-2 saved with GPT2LMHeadModel.save_pretrained (GPT-2's defaults: gelu_new, n_inner None),
    with a tokenizer that fits ours saved by transformers' own tokenizer class."""
    cfg = transformers.GPT2Config(
        vocab_size=tok.vocab_size,
        n_positions=36,
        n_embd=40,
        n_layer=2,
        n_head=5,
        resid_pdrop=0,
        embd_pdrop=0,
        attn_pdrop=0,
    )
    model = _randomize(transformers.GPT2LMHeadModel(cfg))
    d = tmp_path / "gpt2"
    model.save_pretrained(d)
    export_tokenizer(tok, "hf", tmp_path / "tok")
    transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tok" / "tokenizer.json")).save_pretrained(d)
    return model, d


def test_gpt2_save_pretrained_imports_with_the_same_logits(tmp_path, gpt2_dir, tok):
    hf, d = gpt2_dir
    import_hf(d, tmp_path / "gpt2.pt")
    model, tok2, info = load_checkpoint(tmp_path / "gpt2.pt")
    assert tok2 == tok and not info["is_qa"]
    c = model.config
    assert (c.d_model, c.n_layers, c.n_heads, c.d_ff, c.context_length, c.pos_emb, c.activation, c.bias) == (
        40,
        2,
        5,
        160,
        36,
        "learned",
        "gelu",
        True,
    )
    ids = torch.randint(0, tok.vocab_size, (2, 36))
    with torch.no_grad():
        assert (model(ids)[0] - hf(ids).logits).abs().max().item() <= 1e-4  # gelu_new vs F.gelu(tanh): ~1e-7


def test_imported_checkpoint_works_with_generate_train_and_export(tmp_path, gpt2_dir, run_cli, corpus):
    _, d = gpt2_dir
    r = run_cli("import", "--from", "hf", d, "--out", tmp_path / "imp.pt")
    assert r.returncode == 0 and "pos_emb learned, activation gelu, bias on" in r.stderr, r.stderr
    r = run_cli(
        "generate",
        "--checkpoint",
        tmp_path / "imp.pt",
        "--prompt",
        "And God",
        "--temperature",
        "0",
        "--max_tokens",
        "8",
    )
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = run_cli("export", "--checkpoint", tmp_path / "imp.pt", "--format", "hf", "--out", tmp_path / "again")
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "train", "--data", corpus, "--init_from", tmp_path / "imp.pt", "--max_iters", "2", "--eval_interval", "1",
        "--batch_size", "2", "--out_dir", tmp_path / "ft", "--device", "cpu",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert TrainState.load(tmp_path / "ft" / "latest.pt").step == 2


def test_stablelm_with_layernorm_biases_imports_as_bias_on(tmp_path, tok):
    """StableLM's LayerNorms have biases but its MLP and o_proj have none: bias on, with zeros there."""
    cfg = transformers.StableLmConfig(
        vocab_size=tok.vocab_size, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=53, max_position_embeddings=40, partial_rotary_factor=1.0, rope_theta=10000.0,
        use_qkv_bias=True, tie_word_embeddings=True,
    )  # fmt: skip
    hf = _randomize(transformers.StableLmForCausalLM(cfg))
    hf.save_pretrained(tmp_path / "s")
    export_tokenizer(tok, "hf", tmp_path / "t")
    shutil.copy(tmp_path / "t" / "tokenizer.json", tmp_path / "s")
    import_hf(tmp_path / "s", tmp_path / "s.pt")
    model, _, _ = load_checkpoint(tmp_path / "s.pt")
    assert model.config.bias and model.config.activation == "swiglu" and model.config.d_ff == 80
    ids = torch.randint(0, tok.vocab_size, (2, 40))
    with torch.no_grad():
        assert (model(ids)[0] - hf(ids).logits).abs().max().item() <= 1e-4


def _edit_json(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "file,edit,message",
    [
        ("tokenizer.json", lambda d: d["added_tokens"][0].update(content="<|endoftext|>"), r"special tokens .*<\|endoftext\|>=0 .*differ from tinyllm's <PAD>=0 <UNK>=1 <BOS>=2 <EOS>=3"),
        ("tokenizer.json", lambda d: d["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex=r"\w+|\s"), r"split pattern '\\\\w\+\|\\\\s' is not one of tinyllm's"),
        ("tokenizer.json", lambda d: d["model"].update(ignore_merges=False), r"ignore_merges is false"),
        ("tokenizer.json", lambda d: d.update(normalizer={"type": "NFC"}), r"normalizer \('NFC'\)"),
        ("tokenizer.json", lambda d: d["model"]["merges"].reverse(), r"merges do not make the tokens 260\.\.399 in id order"),
        ("config.json", lambda d: d.update(activation_function="gelu"), r"the activation is 'gelu'; tinyllm computes only"),
        ("config.json", lambda d: d.update(layer_norm_epsilon=1e-6), r"LayerNorm epsilon is 1e-06"),
        ("config.json", lambda d: d.update(model_type="llama"), r"model_type 'llama' is not one tinyllm imports"),
        ("config.json", lambda d: d.update(scale_attn_by_inverse_layer_idx=True), r"scale_attn_by_inverse_layer_idx"),
    ],
)  # fmt: skip
def test_refuses_what_tinyllm_cannot_represent(tmp_path, gpt2_dir, file, edit, message):
    _, d = gpt2_dir
    _edit_json(d / file, edit)
    with pytest.raises(TinyLLMError, match=message):
        import_hf(d, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_refuses_neox_settings_we_do_not_compute(tmp_path, tok):
    from test_export import checkpoint

    _, ckpt = checkpoint(tmp_path, tok, "rope", "gelu", True)
    export_checkpoint(ckpt, "hf", tmp_path / "n")
    for field, value, message in [
        ("use_parallel_residual", True, "use_parallel_residual is True"),
        ("rope_parameters", {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}, "rotary fraction is 0.25"),
        ("rope_parameters", {"rope_type": "default", "rope_theta": 500000.0, "partial_rotary_factor": 1.0}, "rope theta is 500000"),
    ]:  # fmt: skip
        bad = tmp_path / f"bad_{field}"
        shutil.copytree(tmp_path / "n", bad, dirs_exist_ok=True)
        _edit_json(bad / "config.json", lambda d, f=field, v=value: d.update({f: v}))
        with pytest.raises(TinyLLMError, match=message):
            import_hf(bad, tmp_path / "x.pt")


def test_untied_head_must_equal_the_embedding(tmp_path, gpt2_dir):
    from safetensors.torch import load_file, save_file

    _, d = gpt2_dir
    w = load_file(str(d / "model.safetensors"))
    w["lm_head.weight"] = w["transformer.wte.weight"] + 1
    save_file(w, str(d / "model.safetensors"))
    with pytest.raises(TinyLLMError, match=r"lm_head.weight differs from the token embedding"):
        import_hf(d, tmp_path / "x.pt")


def test_never_downloads(tmp_path, run_cli):
    r = run_cli("import", "--from", "hf", "openai-community/gpt2", "--out", tmp_path / "x.pt")
    assert r.returncode == 2 and not (tmp_path / "x.pt").exists()
    assert r.stderr.strip() == (
        "error: openai-community/gpt2: no such directory (a hub id? tinyllm never downloads: fetch it first, "
        "e.g. hf download openai-community/gpt2 --local-dir DIR)"
    )
    (tmp_path / "empty").mkdir()
    r = run_cli("import", "--from", "hf", tmp_path / "empty", "--out", tmp_path / "x.pt")
    assert r.returncode == 2 and "no config.json (not a transformers model directory)" in r.stderr
