#!/usr/bin/env bash
# Every GPU check and measurement of issue 5 in one run, the exact path measured in the same
# run on the same card. Usage, from the repository root on a CUDA machine with lptn installed
# and ../shared beside the clone:
#
#     bash benchmarks/gpu_checks.sh [OUT_DIR]   # under 10 min (the step limits add up to 580 s)
#
# Writes OUT_DIR/{nvidia-smi.txt, tests_cuda.txt, inference_cuda.json, train_step_cuda.txt,
# test_speed_*/speed.json}.
# Each step is limited in time and a failing step does not stop the others; the exit status
# is that of the first failing step.
#
# DEVICE, SIZES, REPEATS, STEPS, BATCH, CROP and SPEED_SIZES override the defaults, e.g. a quick
# CPU smoke run of the script itself (about 5 minutes on 2 cores, compiling included):
#   PYTHON=.venv/bin/python DEVICE=cpu SIZES=96x128 REPEATS=1 STEPS=1 BATCH=2 CROP=64 \
#   SPEED_SIZES='[[64,96]]' bash benchmarks/gpu_checks.sh /tmp/smoke
set -u
OUT=${1:-${OUT:-results/gpu_checks}}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
SIZES=${SIZES:-2160x3840 480x720 4320x7680}
REPEATS=${REPEATS:-20}
STEPS=${STEPS:-30}
BATCH=${BATCH:-16}
CROP=${CROP:-256}
SPEED_SIZES=${SPEED_SIZES:-[[480,720],[2160,3840]]}
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
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda,
           torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')" \
    | tee "$OUT/versions.txt"

# 1. Fidelity on the GPU: device-parametrised tests (archs, fast / graph paths, metrics) run
#    on cuda as well as the CPU (the CPU-only compile tests are left to CI).
step 90 tests_cuda.txt "$PY" -m pytest tests/test_archs tests/test_inference tests/test_metrics \
    -q -x --device "$([ "$DEVICE" = cpu ] && echo cpu || echo "cpu,$DEVICE")" -p no:cacheprovider -k "not torch_compile"

# 2. Inference, 4K first (the JSON is rewritten after each size): exact (fp32, the
#    reference), exact compiled (the reference's compiled figure), fast path in three
#    precisions, graph path compiled / with CUDA graphs in fp16 and bf16; allocator peaks.
# shellcheck disable=SC2086  # SIZES is a list
step 240 inference_cuda.txt "$PY" benchmarks/bench_inference.py --device "$DEVICE" \
    --sizes $SIZES --repeats "$REPEATS" --warmup 3 \
    --paths exact exact-compile fast-fp32 fast-fp16 fast-bf16 graph-eager-fp16 \
            graph-compile-fp16 graph-cudagraphs-fp16 graph-cudagraphs-bf16 \
    --json "$OUT/inference_cuda.json"

# 3. Training step, batch 16, 256 x 256, G + D + gradient penalty, in its variants.
step 100 train_step_cuda.txt "$PY" benchmarks/bench_train_step.py --device "$DEVICE" \
    --batch "$BATCH" --crop "$CROP" --steps "$STEPS" --compile

# 4. The user-facing command: test_speed.py on the FiveK sample photos, fast path (default) and
#    graph path with CUDA graphs, fp16; speed.json names path and precision.
SAMPLE=../shared/data/fivek_sample
for variant in "fast" "graph reduce-overhead"; do
    set -- $variant
    extra=()
    if [ "$#" -eq 2 ]; then extra=(inference.compile=$2); fi
    step 75 test_speed_cuda.txt "$PY" test_speed.py -opt options/test/LPTN/test_speed_FiveK.yml \
        --set num_gpu=$([ "$DEVICE" = cpu ] && echo 0 || echo 1) path.pretrain_network_g=../shared/models/net_g_FiveK_numhigh3.pth \
        datasets.test.dataroot_lq=$SAMPLE/source datasets.test.dataroot_gt=$SAMPLE/target \
        datasets.test.io_backend.type=disk val.precision=fp16 val.num_img=2 \
        val.times_per_img=20 "val.fix_img_size=$SPEED_SIZES" inference.path=$1 ${extra[@]+"${extra[@]}"} \
        path.results_root="$OUT/test_speed_$1"
done

exit $status
