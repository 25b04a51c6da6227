"""tinyllm.kernels plumbing: backend choice, the fallback without triton, contract errors,
torch.compile without graph breaks, a few training steps of the model on the Triton path,
and the GPU code path (compiled for sm_90 without a GPU; benchmarks/gpu.py dry run).

See test_kernels_flash_attention.py for why TRITON_INTERPRET is set here and the re-run.
"""

import csv
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from kernel_env import ROOT, K, dispatch, needs_interpreter, needs_rerun, rerun_in_subprocess

from tinyllm.kernels.tolerances import CLOSE

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")

# Prepended to subprocess snippets: import tinyllm.kernels the way this file does.
_PRELUDE = "import tinyllm\nimport tinyllm.kernels as K\n"


def _python(code: str, env_extra: dict | None = None, drop=("TRITON_INTERPRET", "TINYLLM_KERNELS")):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _qkv(B=1, H=2, T=19, D=32, dtype=torch.float32, requires_grad=False):
    return [torch.randn(B, H, T, D, dtype=dtype, requires_grad=requires_grad) for _ in range(3)]


# ---- dispatch ---------------------------------------------------------------------------


@needs_interpreter
def test_backend_choice(monkeypatch):
    x = torch.zeros(3)
    assert K.kernel_backend(x) == "triton"  # CPU under the interpreter
    assert K.kernel_backend(torch.zeros(3, device="meta")) == "reference"
    monkeypatch.setenv("TINYLLM_KERNELS", "reference")
    assert K.kernel_backend(x) == "reference"
    monkeypatch.setenv("TINYLLM_KERNELS", "triton")
    assert K.kernel_backend(x) == "triton"
    monkeypatch.setenv("TINYLLM_KERNELS", "auto")
    assert K.kernel_backend(x) == "triton"
    monkeypatch.setenv("TINYLLM_KERNELS", "cuda")
    with pytest.raises(ValueError, match="TINYLLM_KERNELS"):
        K.kernel_backend(x)


def test_forced_reference_is_the_reference(monkeypatch):
    monkeypatch.setenv("TINYLLM_KERNELS", "reference")
    q, k, v = _qkv(requires_grad=True)
    out = K.flash_attention(q, k, v, causal=True)
    assert torch.equal(out, K.flash_attention_ref(q, k, v, causal=True))
    out.sum().backward()  # the reference is differentiable by autograd
    x, b = torch.randn(4, 6), torch.randn(6)
    assert torch.equal(K.gelu(x), K.gelu_ref(x))
    assert torch.equal(K.bias_gelu(x, b, approximate="none"), K.bias_gelu_ref(x, b, "none"))
    assert torch.equal(K.swiglu(x, b.expand(4, 6).contiguous()), K.swiglu_ref(x, b.expand(4, 6)))


@needs_interpreter
def test_triton_and_reference_paths_agree(monkeypatch):
    """The same call on both paths (forced with TINYLLM_KERNELS), outputs and gradients."""
    q, k, v = _qkv(B=2, H=2, T=40, D=48)
    x, b = torch.randn(3, 50), torch.randn(50)
    results = {}
    for backend in ("triton", "reference"):
        monkeypatch.setenv("TINYLLM_KERNELS", backend)
        leaves = [t.clone().requires_grad_() for t in (q, k, v, x, b)]
        out = (
            K.flash_attention(*leaves[:3], causal=False).sum()
            + K.bias_gelu(leaves[3], leaves[4]).sum()
            + K.swiglu(leaves[3], leaves[3] * 2).sum()
            + K.gelu(leaves[3], approximate="none").sum()
        )
        out.backward()
        results[backend] = [out.detach()] + [t.grad for t in leaves]
    for a, r in zip(results["triton"], results["reference"]):
        torch.testing.assert_close(a, r, **CLOSE[torch.float32])


def test_installed_triton_imports():
    """The kernel tests skip when triton is not installed; an installed triton that fails to
    import (dispatch then falls back to the reference everywhere) is a failure instead."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton not installed")
    assert dispatch.HAS_TRITON, f"triton is installed but does not import: {dispatch.TRITON_IMPORT_ERROR!r}"


def test_import_without_triton_falls_back():
    """No triton: import works, every op runs its reference, forcing triton is an error."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        + _PRELUDE
        + textwrap.dedent("""
        import os, torch
        assert not K.HAS_TRITON
        q, k, v = (torch.randn(1, 2, 9, 16, requires_grad=True) for _ in range(3))
        assert K.kernel_backend(q) == "reference"
        K.flash_attention(q, k, v).sum().backward()
        x = torch.randn(5, 7)
        assert torch.equal(K.gelu(x), K.gelu_ref(x)) and torch.equal(K.swiglu(x, x), K.swiglu_ref(x, x))
        os.environ["TINYLLM_KERNELS"] = "triton"
        try:
            K.gelu(x)
        except RuntimeError as e:
            assert "triton is not importable" in str(e), e
        else:
            raise AssertionError("TINYLLM_KERNELS=triton without triton must fail")
        print("fallback ok")
    """)
    )
    r = _python(code, {"TRITON_INTERPRET": "1"})
    assert r.returncode == 0 and "fallback ok" in r.stdout, r.stderr[-3000:]


@pytest.mark.skipif(not dispatch.HAS_TRITON, reason="triton not installed")
def test_late_triton_interpret_is_an_error_not_a_silent_fallback():
    code = _PRELUDE.replace(
        "import tinyllm\n", "import tinyllm, torch._dynamo, os\nos.environ['TRITON_INTERPRET'] = '1'\n", 1
    ) + textwrap.dedent("""
        import torch
        assert not K.dispatch.INTERPRETED
        try:
            K.gelu(torch.randn(4))
        except RuntimeError as e:
            assert "TRITON_INTERPRET=1 was set after triton was imported" in str(e), e
        else:
            raise AssertionError("expected an error")
        del os.environ["TRITON_INTERPRET"]
        assert K.kernel_backend(torch.zeros(1)) == "reference"
        print("late ok")
    """)
    r = _python(code)
    assert r.returncode == 0 and "late ok" in r.stdout, r.stderr[-3000:]


# ---- contract errors --------------------------------------------------------------------


def _bad_attention_calls():
    q, k, v = _qkv()
    return {
        "3-D": ((q[0], k[0], v[0]), {}, "4-D"),
        "shape": ((q, k[:, :, :5], v), {}, "same shape"),
        "dtype mix": ((q, k.double(), v), {}, "share a dtype"),
        "float64": ((q.double(), k.double(), v.double()), {}, "float32, float16 or bfloat16"),
        "int": ((q.int(), k.int(), v.int()), {}, "float32, float16 or bfloat16"),
        "D small": (_qkv(D=8), {}, r"head dim D must be in \[16, 128\], got 8"),
        "D large": (_qkv(D=160), {}, "got 160"),
        "device": ((q, k.to("meta"), v), {}, "one device"),
        "stride": ([t.transpose(-1, -2) if i == 0 else t for i, t in enumerate(_qkv(T=32))], {}, "stride 1"),
        "scale": ((q, k, v), {"softmax_scale": -1.0}, "softmax_scale"),
        "not tensor": ((q.numpy(), k, v), {}, "torch.Tensor"),
    }


@pytest.mark.parametrize("case", list(_bad_attention_calls()))
def test_flash_attention_contract(case):
    args, kwargs, message = _bad_attention_calls()[case]
    with pytest.raises(ValueError, match=message):
        K.flash_attention(*args, **kwargs)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: K.gelu(torch.randn(4, 6).t()), "contiguous"),
        (lambda: K.gelu(torch.randn(4).double()), "float32, float16 or bfloat16"),
        (lambda: K.gelu(torch.randn(4), approximate="erf"), "approximate"),
        (lambda: K.bias_gelu(torch.randn(4, 6), torch.randn(5)), r"x \(\.\.\., N\) and bias \(N,\)"),
        (lambda: K.bias_gelu(torch.randn(4, 6), torch.randn(1, 6)), "bias"),
        (lambda: K.bias_gelu(torch.randn(4, 6), torch.randn(6, device="meta")), "one device"),
        (lambda: K.swiglu(torch.randn(4, 6), torch.randn(4, 5)), "one shape"),
        (lambda: K.swiglu(torch.randn(4, 6), torch.randn(4, 6).half()), "share a dtype"),
        (lambda: K.swiglu(torch.randn(6, 4).t(), torch.randn(4, 6)), "contiguous"),
    ],
    ids=[
        "gelu-strided",
        "gelu-f64",
        "gelu-approx",
        "bias-len",
        "bias-2d",
        "bias-device",
        "swiglu-shape",
        "swiglu-dtype",
        "swiglu-strided",
    ],
)
def test_activation_contracts(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_empty_inputs():
    q, k, v = _qkv(T=0)
    assert K.flash_attention(q, k, v).shape == (1, 2, 0, 32)
    assert K.gelu(torch.empty(0, 5)).shape == (0, 5)


# ---- torch.compile ------------------------------------------------------------------------


class _TinyBlock(torch.nn.Module):
    """Attention + both activations, the way the model calls them ((B, T, H, D) views)."""

    def __init__(self, C=64, H=2):
        super().__init__()
        self.H = H
        self.qkv = torch.nn.Linear(C, 3 * C)
        self.fc = torch.nn.Linear(C, 2 * C, bias=False)
        self.fc_bias = torch.nn.Parameter(torch.randn(2 * C) * 0.1)
        self.gate = torch.nn.Linear(C, 2 * C)
        self.proj = torch.nn.Linear(2 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        x = x + K.flash_attention(q, k, v, causal=True).transpose(1, 2).reshape(B, T, C)
        h = self.fc(x)
        h = K.bias_gelu(h, self.fc_bias) + K.swiglu(self.gate(x), h) + K.gelu(h, approximate="none")
        return x + self.proj(h)


def _compile_matches_eager(backend):
    torch.manual_seed(0)
    model = _TinyBlock()
    x = torch.randn(2, 17, 64)
    eager_out = model(x)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)  # fullgraph: a graph break raises
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager_out, **CLOSE[torch.float32])
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, **CLOSE[torch.float32])


def test_torch_compile_fullgraph_reference_path(monkeypatch):
    monkeypatch.setenv("TINYLLM_KERNELS", "reference")
    _compile_matches_eager("aot_eager")


@needs_interpreter
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_triton_path(backend):
    """The Triton ops are torch.library custom ops: compiled graphs call them, no graph break."""
    assert K.kernel_backend(torch.zeros(1)) == "triton"
    _compile_matches_eager(backend)


# ---- the model on the Triton path ---------------------------------------------------------


@needs_interpreter
@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_model_trains_on_triton_path_like_reference(activation):
    """A few AdamW steps of TinyLLM with attention='triton' (flash attention + fused activations,
    in the interpreter) track attention='reference' losses."""
    from tinyllm.model import ModelConfig, TinyLLM

    cfg = dict(
        vocab_size=61, context_length=24, d_model=64, n_layers=2, n_heads=2, d_ff=96, dropout=0.0, activation=activation
    )
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 61, (3, 24), generator=g)
    targets = torch.randint(0, 61, (3, 24), generator=g)
    losses = {}
    for backend in ("triton", "reference"):
        torch.manual_seed(0)
        model = TinyLLM(ModelConfig(attention=backend, **cfg))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        run = []
        for _ in range(4):
            _, loss = model(idx, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses[backend] = run
    assert losses["triton"][-1] < losses["triton"][0]  # it learns
    for a, b in zip(losses["triton"], losses["reference"]):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), losses


# ---- the GPU code path, without a GPU ----------------------------------------------------


def _nvidia_backend_available():
    """triton's NVIDIA backend is registered (the Linux wheel bundles it). An import error
    here is a broken triton and fails the test run, not a skip."""
    from triton.backends import backends

    return "nvidia" in backends


@pytest.mark.skipif(
    not dispatch.HAS_TRITON or not _nvidia_backend_available(),
    reason="needs triton with its NVIDIA backend (bundled in the Linux wheel)",
)
def test_kernels_compile_for_sm90():
    """Compiles every kernel (one autotune config each) to an sm_90 cubin: catches what the
    interpreter cannot (Triton front-end rules, shared memory, register spills)."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--compile-only"],
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    assert "FAIL" not in r.stdout


def test_gpu_benchmark_script_cli(tmp_path):
    """--help works without a GPU; a plain run without CUDA exits 2 with a clear message;
    --dry-run walks every stage at tiny sizes on CPU and writes CSV rows."""
    script = str(ROOT / "benchmarks" / "gpu.py")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TINYLLM_KERNELS")}
    r = subprocess.run([sys.executable, script, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--dry-run" in r.stdout
    if torch.cuda.is_available():
        pytest.skip("CUDA present: run benchmarks/gpu.py itself")
    r = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no CUDA device" in r.stderr
    if not dispatch.HAS_TRITON:
        return
    out = tmp_path / "rows.csv"
    r = subprocess.run(
        [sys.executable, script, "--dry-run", "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert {"gpu", "commit", "date", "torch", "triton", "ms", "tflops", "gbps"} <= set(rows[0])
    benches = {row["bench"] for row in rows}
    assert {"check_attention", "attention_fwd_bwd", "copy", "gelu_fwd", "bias_gelu_fwd_bwd", "swiglu_fwd"} <= benches
    assert not [row for row in rows if row["status"] == "FAIL"]


def _documented_columns(results_file: str) -> list[str]:
    """The column names of benchmarks/README.md's table for one results file, in order."""
    lines = (ROOT / "benchmarks" / "README.md").read_text().splitlines()
    start = lines.index(next(x for x in lines if x.startswith(f"### `{results_file}`")))
    columns = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            columns.append(line.split("`")[1])
    return columns


def test_gpu_csv_columns_are_the_documented_ones(monkeypatch):
    """gpu.py's writer, the header of results/gpu.csv and the README's schema list the same columns."""
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_bench", gpu)  # dataclasses look their module up there
    spec.loader.exec_module(gpu)
    with (ROOT / "benchmarks" / "results" / "gpu.csv").open() as f:
        header = next(csv.reader(f))
    assert gpu.CSV_FIELDS == header == _documented_columns("gpu.csv")


@needs_rerun
def test_rerun_in_subprocess():
    rerun_in_subprocess(__file__)
