#!/usr/bin/env bash
# GPU check for sparsolve, on a machine with one CUDA device.  From the repo root:
#
#     PYTHONPATH=. bash benchmarks/gpu_check.sh          # part 1 (run it first)
#     PYTHONPATH=. bash benchmarks/gpu_check.sh scale    # part 2: learning at scale (#13)
#     PYTHONPATH=. bash benchmarks/gpu_check.sh saes     # part 3: versus the SAE libraries (#15)
#     PYTHONPATH=. bash benchmarks/gpu_check.sh synth    # part 4: SynthSAEBench-16k (#22), rerun to continue
#     PYTHONPATH=. bash benchmarks/gpu_check.sh conv     # convolutional sparse coding (#26), under 7 minutes
#
# Each part stays under 8 minutes (every step has its own time limit).  Part 1's steps,
# most important first:
# 1. every test marked gpu (tests/gpu, the GPU tests of fit and amortized, and the Triton online
#    kernel against the Python loop, tests/test_online_triton.py);
# 2. encode on CUDA (benchmarks/encode.py --device cuda): 16x16 patches, 1,024 atoms,
#    65,536 and 262,144 samples, float32 with TF32: ms per FISTA iteration (the fused
#    kernel, the array-operation step, a plain torch FISTA) against the floor; and,
#    without TF32, the time to a relative gap of 1e-4;
# 3. amortized against exact inference on CUDA (benchmarks/amortized.py --device cuda);
# 4. fit's throughput on CUDA (benchmarks/fit.py --device cuda);
# 5. the online pass's in-block steps (unit norm; 1,024×256, 4,096×768, 16,384×768): the Python
#    loop, the Triton kernel, and each captured in a CUDA graph (benchmarks/online_update.py,
#    3 s of timed passes a size).  The step limits add up to 480 s.
# Part 2 ("scale"), for #13, after part 1 (whose gpu_tests include tests/gpu/test_gpu_learning.py):
# 1. the online update on CUDA: the blocked pass against the per-atom loop it replaced
#    (benchmarks/online_update.py --device cuda, 1,024×256 and 4,096×768);
# 2. fit on 16×16 patches with 1,024 atoms at batches of 8,192 and 65,536: patches/s with fit's
#    host reads every 16 steps (its GPU default) and every step (sync_every=1, as before), then the
#    time split (inference, update, sync and bookkeeping, data and loop) (benchmarks/scale.py gpu-patches);
# 3. fit on synthetic activations, d = 768, 16,384 atoms, updates online and sgd: tokens/s,
#    the split, the recovery of the planted features, and sparsify's TopK SAE step on the same
#    tokens with fit's time per token over its (target ≤ 10×) (benchmarks/scale.py gpu-synthetic).
# Part 3 ("saes"), for #15, after part 1 (which checks fista and the amortized encoders on
# CUDA first): benchmarks/versus_saes.py at the issue's GPU size, d = 768, 16,384 planted
# features, 16,384 atoms, 262,144 training tokens (batches of 1,024; fit's 4,096), 3 knobs
# a method, in two runs with their own limits so that a slow one cannot take the other down:
# 1. fit (exact, fista on cuda) against sparsify TopK and SAELens TopK (table, recovery,
#    and the inference-only comparison: amortisation and dictionary gaps);
# 2. the seed's autoencoder at t* = 0 and 5 (each 16,384² G makes t* = 5 the slow one).
# Part 4 ("synth"), for #22 (unmeasured: no GPU was lent when it was written): SynthSAEBench-16k
# itself, the published config built on the GPU by SAELens (its own cache,
# benchmarks/_out/synthsaebench_gpu: CUDA draws other numbers than the CPU), then
# benchmarks/synthsaebench.py on CUDA, seed 0, 2,097,152 samples a cell (1% of the published
# 200M): the calibration (step costs, fit's α at L0 20 and 25), the equal-data cells (every
# method at L0 20 and 25) and the equal-compute cells (each SAE for fit's time), then the
# report beside the published rows.  Cells are cached as they finish: run the part again to
# continue where a time limit stopped it.
# The GPU machine has no package registry.  Before the session, download the peers and
# their non-torch dependencies here (the versions tested on the CPU; add
# --python-version/--platform if the GPU machine's Python is not 3.11 on x86_64):
#     /work/venv-peers/bin/pip download --no-deps -d shared/wheels eai-sparsify==1.3.3 \
#       sae-lens==6.54.12 schedulefree==1.4.1 transformer-lens==3.9.0 transformers==5.24.0 \
#       tokenizers==0.23.3 safetensors==0.8.0 huggingface_hub==2.4.0 accelerate==1.15.0 \
#       datasets==5.2.0 pyarrow==26.0.1 pandas==3.1.1 dill==0.4.1 multiprocess==0.70.19 \
#       xxhash==4.1.0 einops==0.8.2 jaxtyping==0.3.11 natsort==8.4.0 simple-parsing==0.1.9 \
#       docstring_parser==0.18.0 better-abc==0.0.3 sentencepiece==0.2.3 wandb==0.31.0 \
#       pydantic==2.13.4 pydantic_core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 \
#       PyYAML==6.0.3 regex==2026.5.9 requests==2.34.2 urllib3==2.7.0 idna==3.20 \
#       charset-normalizer==3.4.7 rich==15.0.0 click==8.5.1 platformdirs==4.14.9 \
#       protobuf==7.36.2 python-dateutil==2.9.0.post0 six==1.17.0 attrs==26.1.0
# (what importing the peers loads; sae_lens pulls most of it).  Part 3 installs them from
# shared/wheels with --no-index; whatever is still missing, versus_saes.py reports as
# "PEER NOT RUN: <module> could not be imported (<reason>)" and its rows as "not run: ...".
# Logs go to benchmarks/_out/gpu_check_*.log, and to $OUT as well where it is set
# (the device tool brings $OUT back); so do the results the benchmarks record
# (benchmarks/results/<case>.json, copied to $OUT/results: commit them, then run
# `python benchmarks/harness.py`).  The summary is printed last.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}" PYTHONUNBUFFERED=1
LOGS=benchmarks/_out
mkdir -p "$LOGS"
START=$SECONDS
SUMMARY=()
MARK=$(mktemp)  # results written after this are this run's

results_back() {  # copy this run's benchmarks/results/*.json to $OUT/results
    [ -n "${OUT:-}" ] || return 0
    mkdir -p "$OUT/results"
    find benchmarks/results -name '*.json' -newer "$MARK" -exec cp {} "$OUT/results/" \;
}

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

if [ "${1:-}" = "saes" ]; then
    if ! python -c "import sparsify, sae_lens" > /dev/null 2>&1; then
        if [ -d shared/wheels ]; then
            python -m pip install -q --no-index --find-links shared/wheels eai-sparsify sae-lens 2>&1 | tail -n 3
        else
            echo "!!! shared/wheels is missing: the peers cannot be installed (see this script's header)"
        fi
    fi
    GPU_SAES=(--size gpu --device cuda --tokens 262144 --batch 1024 --fit-batch 4096 --gap-tokens 1024 --threads 8)
    step versus_saes_peers_cuda 270 python benchmarks/versus_saes.py "${GPU_SAES[@]}" \
        --methods "fit (exact),sparsify TopK,SAELens TopK" --out benchmarks/_out/versus_saes_gpu_peers
    step versus_saes_ae_cuda 180 python benchmarks/versus_saes.py "${GPU_SAES[@]}" \
        --methods "AE t*=0,AE t*=5" --out benchmarks/_out/versus_saes_gpu_ae
    for run in peers ae; do
        for ext in md json png; do
            [ -n "${OUT:-}" ] && cp "benchmarks/_out/versus_saes_gpu_$run/versus_saes.$ext" "$OUT/versus_saes_gpu_$run.$ext" 2>/dev/null
        done
    done
    results_back
    echo
    echo "=== summary (part 3: saes)"
    grep -hE '^(!!!|\| )' "$LOGS"/gpu_check_versus_saes_*.log 2>/dev/null
    printf '%s\n' "" "| step | result | time |" "|---|---|---|" "${SUMMARY[@]}" "total $((SECONDS - START)) s"
    exit 0
fi

if [ "${1:-}" = "synth" ]; then
    if ! python -c "import sparsify, sae_lens" > /dev/null 2>&1; then
        if [ -d shared/wheels ]; then
            python -m pip install -q --no-index --find-links shared/wheels eai-sparsify sae-lens 2>&1 | tail -n 3
        else
            echo "!!! shared/wheels is missing: the peers cannot be installed (see this script's header)"
        fi
    fi
    SYN_CACHE=benchmarks/_out/synthsaebench_gpu
    SYN=(--size 16k --device cuda --threads 8 --cache "$SYN_CACHE" --samples 2097152 --seeds 0)
    step synth_build_cuda 120 python benchmarks/synthsaebench_data.py 16k --device cuda --threads 8 --cache "$SYN_CACHE"
    step synth_calibrate_cuda 150 python benchmarks/synthsaebench.py calibrate "${SYN[@]}"
    step synth_run_cuda 165 python benchmarks/synthsaebench.py run "${SYN[@]}"
    step synth_report 45 python benchmarks/synthsaebench.py report "${SYN[@]}" --results-dir "$SYN_CACHE/results" \
        --figures-dir "$SYN_CACHE/figures"
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT/synthsaebench_gpu"
        cp -r "$SYN_CACHE/results" "$SYN_CACHE/figures" "$SYN_CACHE/16k/calibration.json" "$SYN_CACHE/16k/cells" \
            "$OUT/synthsaebench_gpu/" 2>/dev/null
    fi
    echo
    echo "=== summary (part 4: synth)"
    grep -hE '^(#|L0 |SAELens|sparsify|sparsolve|!!!)' "$LOGS"/gpu_check_synth_*.log 2>/dev/null | tail -n 60
    printf '%s\n' "" "| step | result | time |" "|---|---|---|" "${SUMMARY[@]}" "total $((SECONDS - START)) s"
    exit 0
fi

if [ "${1:-}" = "conv" ]; then  # convolutional sparse coding (#26): not yet measured on a GPU
    step conv_gpu_tests 90 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_gpu_conv.py
    step conv_gpu 300 python benchmarks/conv_gpu.py --device cuda --images 256 --cpu-images 8
    echo
    echo "=== summary (conv)"
    grep -hE "^\{|passed|failed" "$LOGS"/gpu_check_conv_*.log 2>/dev/null
    printf '%s\n' "" "| step | result | time |" "|---|---|---|" "${SUMMARY[@]}" "total $((SECONDS - START)) s"
    exit 0
fi

if [ "${1:-}" = "scale" ]; then
    step online_update_cuda 80 python benchmarks/online_update.py --device cuda --sizes 1024x256 4096x768 --repeats 5
    step scale_patches_cuda 150 python benchmarks/scale.py gpu-patches
    step scale_synthetic_cuda 230 python benchmarks/scale.py gpu-synthetic
    results_back
    echo
    echo "=== summary (part 2: scale)"
    grep -hE '^\*Case|^Figures:' "$LOGS"/gpu_check_online_update_cuda.log "$LOGS"/gpu_check_scale_*.log 2>/dev/null
    echo
    echo "| step | result | time |"
    echo "|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo "total $((SECONDS - START)) s"
    exit 0
fi

step gpu_tests 110 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu tests/test_fit.py tests/test_amortized.py \
    tests/test_online_triton.py
step encode_cuda 160 python benchmarks/encode.py --device cuda --n 65536 262144  # 48 s on an H200 (2026-11-26)
step amortized_cuda 130 python benchmarks/amortized.py --device cuda --epochs 3  # 12 (the CPU default) would not fit
step fit_cuda 50 python benchmarks/fit.py --device cuda
step online_triton_cuda 30 python benchmarks/online_update.py --device cuda --rules unit \
    --sizes 1024x256 4096x768 16384x768 --paths loop blocked graph-loop graph --repeats 7 --budget 3

results_back
echo
echo "=== summary"
grep -E '^[0-9]+ (passed|failed)|passed|failed' "$LOGS/gpu_check_gpu_tests.log" 2>/dev/null | tail -n 1
grep -hE '^\*Case|^Figures:' "$LOGS"/gpu_check_encode_cuda.log "$LOGS"/gpu_check_amortized_cuda.log \
    "$LOGS"/gpu_check_fit_cuda.log "$LOGS"/gpu_check_online_triton_cuda.log 2>/dev/null
grep -E '^not run' "$LOGS/gpu_check_online_triton_cuda.log" 2>/dev/null
echo
echo "| step | result | time |"
echo "|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
echo "total $((SECONDS - START)) s"
