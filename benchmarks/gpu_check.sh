#!/usr/bin/env bash
# GPU check for sparsolve, on a machine with one CUDA device.  From the repo root:
#
#     PYTHONPATH=. bash benchmarks/gpu_check.sh
#
# 1. every test marked gpu (python -m pytest -q -m gpu: tests/gpu and the GPU tests of fit and amortized);
# 2. the encode benchmark on CUDA, 16x16 patches, 1,024 atoms, 65,536 and 262,144
#    samples, float32 with TF32 allowed: ms per FISTA iteration, time to a relative
#    gap of 1e-4, and the floor (max of the measured product and the bytes one
#    iteration moves at the measured copy bandwidth), each against a plain torch FISTA;
# 3. benchmarks/fit.py and benchmarks/amortized.py --device cuda, where they exist.
# Each step has its own time limit so that the whole stays under 8 minutes; the
# summary is printed last.  Logs go to benchmarks/_out/gpu_check_*.log.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}"
OUT=benchmarks/_out
mkdir -p "$OUT"
START=$SECONDS
SUMMARY=()

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local log="$OUT/gpu_check_${name}.log" t0=$SECONDS rc
    echo "=== $name: $* (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    local verdict="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then verdict="TIMED OUT"; elif [ "$rc" -ne 0 ]; then verdict="FAILED (rc=$rc)"; fi
    SUMMARY+=("| $name | $verdict | $((SECONDS - t0)) s |")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

step gpu_tests 120 python -m pytest -q -m gpu
step encode_cuda 220 python benchmarks/encode.py --device cuda --n 65536 262144
if [ -f benchmarks/fit.py ]; then
    step fit_cuda 60 python benchmarks/fit.py --device cuda
fi
if [ -f benchmarks/amortized.py ]; then
    step amortized_cuda 60 python benchmarks/amortized.py --device cuda
fi

echo
echo "=== encode on CUDA (float32, TF32; ratios vs the floor and vs a plain torch FISTA)"
grep '^|' "$OUT/gpu_check_encode_cuda.log" 2>/dev/null || echo "(no table: see $OUT/gpu_check_encode_cuda.log)"
echo
echo "| step | result | time |"
echo "|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
echo "total $((SECONDS - START)) s"
