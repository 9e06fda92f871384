#!/usr/bin/env bash
# GPU check for sparsolve, on a machine with one CUDA device.  From the repo root:
#
#     PYTHONPATH=. bash benchmarks/gpu_check.sh
#
# Steps, most important first, each under its own time limit so that the whole
# stays under 8 minutes:
# 1. every test marked gpu (tests/gpu, and the GPU tests of fit and amortized);
# 2. encode on CUDA (benchmarks/encode.py --device cuda): 16x16 patches, 1,024 atoms,
#    65,536 and 262,144 samples, float32 with TF32: ms per FISTA iteration (the fused
#    kernel, the array-operation step, a plain torch FISTA) against the floor; and,
#    without TF32, the time to a relative gap of 1e-4;
# 3. amortized against exact inference on CUDA (benchmarks/amortized.py --device cuda);
# 4. fit's throughput on CUDA (benchmarks/fit.py --device cuda).
# Logs go to benchmarks/_out/gpu_check_*.log, and to $OUT as well where it is set
# (the device tool brings $OUT back); the summary is printed last.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}" PYTHONUNBUFFERED=1
LOGS=benchmarks/_out
mkdir -p "$LOGS"
START=$SECONDS
SUMMARY=()

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local log="$LOGS/gpu_check_${name}.log" t0=$SECONDS rc
    echo "=== $name: $* (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    rc=$?
    tail -n 40 "$log"
    [ -n "${OUT:-}" ] && cp "$log" "$OUT/"
    local verdict="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then verdict="TIMED OUT"; elif [ "$rc" -ne 0 ]; then verdict="FAILED (rc=$rc)"; fi
    SUMMARY+=("| $name | $verdict | $((SECONDS - t0)) s |")
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null || true
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" 2>&1 | tail -1

step gpu_tests 100 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu tests/test_fit.py tests/test_amortized.py
step encode_cuda 170 python benchmarks/encode.py --device cuda --n 65536 262144
step amortized_cuda 130 python benchmarks/amortized.py --device cuda --epochs 3  # 12 (the CPU default) would not fit
step fit_cuda 50 python benchmarks/fit.py --device cuda

echo
echo "=== summary"
grep -E '^(\| |GPU:|Per iteration|Time to)' "$LOGS/gpu_check_encode_cuda.log" 2>/dev/null || echo "(no encode table: see the log above)"
grep -E '^[0-9]+ (passed|failed)|passed|failed' "$LOGS/gpu_check_gpu_tests.log" 2>/dev/null | tail -n 1
grep -E '^\| learned-G T=[125] \(lca|^\| fit on' "$LOGS/gpu_check_amortized_cuda.log" "$LOGS/gpu_check_fit_cuda.log" 2>/dev/null \
    | sed 's/^[^:]*://'
echo
echo "| step | result | time |"
echo "|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
echo "total $((SECONDS - START)) s"
