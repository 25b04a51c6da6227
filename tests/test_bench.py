"""`tinyllm bench train` runs at a toy size and reports both rates and their ratio (no timing asserts)."""

import csv

import pytest

pytest.importorskip("transformers")

TOY = (
    "--d_model 32 --n_layers 2 --n_heads 2 --d_ff 64 --context_length 16 --vocab_size 97 --batch_size "
    "2 --steps 3 --warmup 1 --device cpu --threads 1"
).split()


def test_bench_train_prints_both_rates_and_the_ratio_and_appends_a_row(run_cli, tmp_path):
    r = run_cli("bench", "train", *TOY, "--out", tmp_path / "results")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert (
        lines[0].startswith(
            "tinyllm bench train: tiny with vocab_size, context_length, d_model, n_layers, n_heads, d_ff changed ("
        )
        and "batch 2 x context 16" in lines[0]
    )
    rows = {ln.split()[0]: ln.split() for ln in lines if ln.strip().startswith(("tinyllm ", "transformers "))}
    for name in ("tinyllm", "transformers"):
        assert float(rows[name][1].replace(",", "")) > 0  # tokens/s
    ratio = [ln for ln in lines if "ratio tinyllm / transformers:" in ln]
    assert len(ratio) == 1 and ratio[0].strip().split(": ")[1].split("x")[0].replace(".", "").isdigit()
    # the GPT-2 shape: both models have exactly the same parameters
    with open(tmp_path / "results" / "train.csv") as f:
        row = list(csv.DictReader(f))[-1]
    assert row["ours"] == "tinyllm" and row["against"] == "transformers-gpt2" and row["unit"] == "tokens/s"
    assert float(row["ratio"]) == pytest.approx(float(row["ours_value"]) / float(row["their_value"]), rel=1e-2)
    assert row["date"] and row["commit"] and row["machine"]


def test_bench_train_row_records_the_commit_it_is_told(run_cli, tmp_path):
    """A copy of the tree on a lent GPU machine has another .git: TINYLLM_COMMIT names the source."""
    r = run_cli("bench", "train", *TOY, "--steps", "1", "--out", tmp_path / "r.csv", env={"TINYLLM_COMMIT": "abc1234"})
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "r.csv") as f:
        assert list(csv.DictReader(f))[-1]["commit"] == "abc1234"


def test_bench_train_bad_flag_is_one_line(run_cli):
    r = run_cli("bench", "train", *TOY[:-2], "--steps", "0")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --steps must be a positive integer, got 0"


def test_bench_train_profile_shows_where_each_steps_time_goes(run_cli):
    r = run_cli("bench", "train", *TOY, "--profile", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for name in ("tinyllm", "transformers"):
        header = [ln for ln in out.splitlines() if ln.strip().startswith(f"profile {name}:")]
        assert len(header) == 1 and "CPU self time of aten ops" in header[0]
    # both models spend most of a step in matmuls at this size; the rollup names them
    cats = [ln for ln in out.splitlines() if ln.strip().startswith("by category:")]
    assert len(cats) == 2 and all("matmul" in c for c in cats)
    assert "aten::mm" in out or "aten::addmm" in out


def test_bench_train_negative_profile_is_one_line(run_cli):
    r = run_cli("bench", "train", *TOY[:-2], "--profile", "-1")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --profile must be >= 0, got -1"


def test_profile_rows_count_each_gpu_kernel_once():
    """On CUDA only kernel events count: not the aten op that launched them (its self device
    time is the kernel's again) nor the GPU mirror of a record_function range."""
    from types import SimpleNamespace as Ev

    from torch.autograd import DeviceType

    from tinyllm.bench.profile import _step_rows

    events = [
        Ev(
            key="aten::mm",
            device_type=DeviceType.CPU,
            is_user_annotation=False,
            self_cpu_time_total=50.0,
            self_device_time_total=900.0,
        ),
        Ev(
            key="sm90_xmma_gemm_bf16",
            device_type=DeviceType.CUDA,
            is_user_annotation=False,
            self_cpu_time_total=0.0,
            self_device_time_total=900.0,
        ),
        Ev(
            key="Optimizer.step#AdamW.step",
            device_type=DeviceType.CUDA,
            is_user_annotation=True,
            self_cpu_time_total=0.0,
            self_device_time_total=400.0,
        ),
        Ev(
            key="multi_tensor_apply_kernel",
            device_type=DeviceType.CUDA,
            is_user_annotation=False,
            self_cpu_time_total=0.0,
            self_device_time_total=300.0,
        ),
    ]
    assert _step_rows(events, cuda=True, n=2) == [("sm90_xmma_gemm_bf16", 0.45), ("multi_tensor_apply_kernel", 0.15)]
    assert _step_rows(events, cuda=False, n=1) == [("aten::mm", 0.05)]


def test_profile_categories():
    from tinyllm.bench.profile import _category

    assert _category("triton_poi_fused_addmm_gelu_3") == "gelu/activation"  # inductor's bias + GELU
    assert _category("triton_tem_fused_addmm_gelu_0") == "matmul"  # a matmul template with its epilogue
    assert _category("_attn_bwd_dkdv") == "attention"
    assert _category("aten::addmm") == "matmul"
    assert _category("_bias_gelu_bwd_kernel") == "gelu/activation"
    assert _category("multi_tensor_apply_kernel") == "optimizer"
    assert _category("aten::_log_softmax_backward_data") == "loss/softmax"
    assert _category("aten::copy_") == "other"


@pytest.mark.parametrize("streams", [1, 4])
def test_bench_serve_keeps_as_many_requests_in_flight_as_streams(monkeypatch, streams):
    """N streams = N clients with one request in flight each; the 1-stream row once ran all its
    requests at once (8 in flight), which inflated the single-stream figure the 16-stream ratio is over."""
    import asyncio

    import tinyllm.bench.serve as bs

    live, most = 0, 0

    async def fake_stream(c, url, tokens, extra=None):
        nonlocal live, most
        live += 1
        most = max(most, live)
        await asyncio.sleep(0.01)
        live -= 1
        return 0.001, [0.001] * (tokens - 1), tokens

    monkeypatch.setattr(bs, "one_stream", fake_stream)
    r = asyncio.run(bs.drive("http://127.0.0.1:9", streams, rounds=3, tokens=5))
    assert most == streams
    assert r["requests"] == 3 * streams and r["tokens"] == 15 * streams
