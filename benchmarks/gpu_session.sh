#!/usr/bin/env bash
# Every GPU measurement the open kernel and trainer issues need, from a bare checkout on a
# CUDA machine:
#   kernels  kernel correctness, then kernel benchmarks (benchmarks/gpu.py; ~4-5 min with
#            the default GPU_BUDGET_S=240 on an H200)
#   train    GPT-2 small against transformers, compiled, sdpa and triton profiled, then
#            batch 16 (benchmarks/bench_train.py; unmeasured, expect ~5 min)
#   all      both (the default; longer than a 10-minute call allows, so split it there)
#
#   TINYLLM_COMMIT=<sha>[+dirty] bash benchmarks/gpu_session.sh kernels
#
# TINYLLM_COMMIT is the commit the rows record (a copied tree's own .git may be stale).
# Rows and logs go to $OUT when it is set (the device tool's output folder: they come back
# even if a later stage is cut off; append the rows to benchmarks/results/ afterwards),
# else to benchmarks/results/. The C++ tokenizer is not used: no pip install needed.
set -uo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
case "$what" in kernels|train|all) ;; *) echo "usage: $0 [kernels|train|all]" >&2; exit 2 ;; esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"  # the lent machine's torch lives in its python3
# setup.py installs kernels/ as tinyllm.kernels; uninstalled, a link stands in for that.
if ! "$py" -c "import tinyllm.kernels" 2>/dev/null; then
    ln -sfn ../kernels tinyllm/kernels
fi
dest="${OUT:-benchmarks/results}"
mkdir -p "$dest"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "commit ${TINYLLM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"

status=0
if [ "$what" != train ]; then
    "$py" benchmarks/gpu.py --budget-s "${GPU_BUDGET_S:-240}" --out "$dest/gpu.csv" 2>&1 \
        | tee "$dest/gpu.log" || status=1
fi
if [ "$what" != kernels ]; then
    "$py" benchmarks/bench_train.py --out "$dest" 2>&1 | tee "$dest/train.log" || status=1
fi
exit $status
