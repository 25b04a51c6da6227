"""Benchmarks that ship with the CLI (`tinyllm bench train`), and provenance for every result row.

bench/train.py       training steps: TinyLLM against transformers' GPT2LMHeadModel, same shapes
bench/profile.py     where a step's time goes, by kind of op
bench/provenance.py  machine and commit of a result row
"""

# Shapes only the benchmark knows: GPT-2 small (124M), the size of the GPU goal.
BENCH_SIZES = {"gpt2": dict(vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12, d_ff=3072)}
# What the issue asks of us, by (device type, size): ratio ours / transformers.
GOALS = {("cpu", "tiny"): 1.3, ("cuda", "gpt2"): 1.5}
