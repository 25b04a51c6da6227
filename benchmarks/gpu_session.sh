#!/usr/bin/env bash
# Every GPU measurement the open kernel and trainer issues need, in one call on a CUDA
# machine (about 8 minutes on an H200): kernel correctness then kernel benchmarks
# (benchmarks/gpu.py), then training throughput against transformers with per-category
# profiles (benchmarks/bench_train.py). Rows go to benchmarks/results/{gpu,train}.csv, logs
# beside them; with $OUT set (the device tool's output folder) copies land there too.
#
#   TINYLLM_COMMIT=<sha> bash benchmarks/gpu_session.sh   # GPU_BUDGET_S=180 caps the kernel benchmarks
#
# Works from a bare checkout: no pip install needed (the C++ tokenizer is not used here).
# TINYLLM_COMMIT is the commit the rows record: a copied tree's own .git may be stale.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# setup.py installs kernels/ as tinyllm.kernels; uninstalled, a link stands in for that.
if ! python -c "import tinyllm.kernels" 2>/dev/null; then
    ln -sfn ../kernels tinyllm/kernels
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "commit ${TINYLLM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"

results=benchmarks/results
status=0
python benchmarks/gpu.py --budget-s "${GPU_BUDGET_S:-180}" 2>&1 | tee "$results/gpu.log" || status=1
python benchmarks/bench_train.py 2>&1 | tee "$results/train.log" || status=1
if [ -n "${OUT:-}" ]; then
    cp "$results"/gpu.csv "$results"/train.csv "$results"/gpu.log "$results"/train.log "$OUT"/
fi
exit $status
