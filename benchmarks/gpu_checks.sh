#!/usr/bin/env bash
# Every GPU check and measurement of issue 5 in one run, the exact path measured in the same
# run on the same card. Usage, from the repository root on a CUDA machine with lptn installed
# and ../shared beside the clone:
#
#     bash benchmarks/gpu_checks.sh [OUT_DIR]        # about 6-8 minutes on an H100
#
# Writes OUT_DIR/{nvidia-smi.txt, tests_cuda.txt, inference_cuda.json, train_step_cuda.txt}.
# Each step is limited in time and a failing step does not stop the others; the exit status
# is that of the first failing step.
set -u
OUT=${1:-${OUT:-results/gpu_checks}}
PY=${PYTHON:-python}
mkdir -p "$OUT"
status=0
step() {  # step SECONDS LOG COMMAND...
    local limit=$1 log=$2; shift 2
    echo "== $*" | tee -a "$OUT/$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    echo "== exit $rc" | tee -a "$OUT/$log"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
    | tee "$OUT/versions.txt"

# 1. Fidelity on the GPU: device-parametrised tests (archs, fast / graph paths, metrics) run
#    on cuda as well as the CPU.
step 240 tests_cuda.txt "$PY" -m pytest tests/test_archs tests/test_inference tests/test_metrics \
    -q -x --device cpu,cuda -p no:cacheprovider

# 2. Inference: exact (fp32, the reference), exact compiled, fast and graph paths (eager,
#    compiled, CUDA graphs) in fp32 / bf16 / fp16 at 480p, 4K and 8K, alternating runs.
step 300 inference_cuda.txt "$PY" benchmarks/bench_inference.py --device cuda \
    --sizes 480x720 2160x3840 4320x7680 --precisions fp32 bf16 fp16 \
    --graph eager compile cudagraphs --exact-compile --repeats 20 --warmup 3 \
    --json "$OUT/inference_cuda.json"

# 3. Training step, batch 16, 256 x 256, G + D + gradient penalty, in its variants.
step 240 train_step_cuda.txt "$PY" benchmarks/bench_train_step.py --device cuda --batch 16 \
    --crop 256 --steps 30 --compile

exit $status
