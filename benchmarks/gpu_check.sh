#!/usr/bin/env bash
# GPU check for sparsolve, on a machine with one CUDA device.  From the repo root:
#
#     PYTHONPATH=. bash benchmarks/gpu_check.sh          # part 1 (run it first)
#     PYTHONPATH=. bash benchmarks/gpu_check.sh scale    # part 2: learning at scale (#13)
#
# Each part stays under 8 minutes (every step has its own time limit).  Part 1's steps,
# most important first:
# 1. every test marked gpu (tests/gpu, and the GPU tests of fit and amortized);
# 2. encode on CUDA (benchmarks/encode.py --device cuda): 16x16 patches, 1,024 atoms,
#    65,536 and 262,144 samples, float32 with TF32: ms per FISTA iteration (the fused
#    kernel, the array-operation step, a plain torch FISTA) against the floor; and,
#    without TF32, the time to a relative gap of 1e-4;
# 3. amortized against exact inference on CUDA (benchmarks/amortized.py --device cuda);
# 4. fit's throughput on CUDA (benchmarks/fit.py --device cuda).
# Part 2 ("scale"), for #13, after part 1 (whose gpu_tests include tests/gpu/test_gpu_learning.py):
# 1. the online update on CUDA: the blocked pass against the per-atom loop it replaced
#    (benchmarks/online_update.py --device cuda, 1,024×256 and 4,096×768);
# 2. fit on 16×16 patches with 1,024 atoms at batches of 8,192 and 65,536: patches/s with fit's
#    host reads every 16 steps (its GPU default) and every step (sync_every=1, as before), then the
#    time split (inference, update, sync and bookkeeping, data and loop) (benchmarks/scale.py gpu-patches);
# 3. fit on synthetic activations, d = 768, 16,384 atoms, updates online and sgd: tokens/s,
#    the split, the recovery of the planted features, and sparsify's TopK SAE step on the same
#    tokens with fit's time per token over its (target ≤ 10×) (benchmarks/scale.py gpu-synthetic).
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

if [ "${1:-}" = "scale" ]; then
    step online_update_cuda 80 python benchmarks/online_update.py --device cuda --sizes 1024x256 4096x768 --repeats 5
    step scale_patches_cuda 150 python benchmarks/scale.py gpu-patches
    step scale_synthetic_cuda 230 python benchmarks/scale.py gpu-synthetic
    echo
    echo "=== summary (part 2: scale)"
    grep -hE '^\| |^  split|^GPU:' "$LOGS"/gpu_check_online_update_cuda.log "$LOGS"/gpu_check_scale_*.log 2>/dev/null
    echo
    echo "| step | result | time |"
    echo "|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo "total $((SECONDS - START)) s"
    exit 0
fi

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
