#!/usr/bin/env bash
# On the GPU machine (the device tool runs it in the repository root, with .device carried): issue
# 14's item 7, pipeline stages on one GPU. Builds tests/gpu/test_gpu_pipeline against that machine's
# torch, writes the fixtures and the real-width 3B/7B bf16 models (as gpu_engine.sh does; reused
# when an earlier script on the same machine wrote them), then runs it: cuda:0,cuda:0 (device copy
# and, with the host-staged copy, the path of GPUs without peer access) and four capped stages on
# cuda:0 against one stage's ids at both widths, cuda:0's measured peak beside the plan's
# prediction, and lanes against steps waited for. (Frames/s: scripts/bench/stages_bench.sh.) Logs go to $OUT.
#   scripts/device/stages_on_one_gpu.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

source scripts/device/build_env.sh
build=build-dev
fixtures=$build/fixtures
real=$build/real-width

(
  if [ ! -d "$fixtures/models/tiny-a" ]; then
    stamp "fixtures: models"
    python3 scripts/fixtures/make_all.py --out "$fixtures" --wheels .device/wheels --only models || exit 1
  fi
  if [ ! -f "$real/7b/reference.safetensors" ]; then
    stamp "real-width models"
    PYTHONUNBUFFERED=1 python3 scripts/device/make_real_width_models.py --out "$real" \
      --tokenizer-from "$fixtures/models/tiny-a" || exit 2
  fi
  stamp "python done"
) > "$OUT/python.log" 2>&1 &
python_pid=$!

stamp "configure"
configure_build "$build" "$OUT/configure.log" -Dfixtures_dir="$root/$fixtures" || { wait $python_pid; exit 1; }
stamp "build"
ninja -C "$build" -j "$(nproc)" tests/gpu/test_gpu_pipeline > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "stages_on_one_gpu: build failed"; wait $python_pid; exit 1; }
stamp "built"
wait $python_pid
python_status=$?
stamp "python exit $python_status"
tail -4 "$OUT/python.log"

export QWENVL_FIXTURES=$root/$fixtures QWENVL_REAL_WIDTH_MODELS=$root/$real OMP_NUM_THREADS=8
stamp "test_gpu_pipeline"
status=0
timeout 480 "$build/tests/gpu/test_gpu_pipeline" --gtest_color=no > "$OUT/test_gpu_pipeline.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? from .* ran|Failure|Expected|Which is|request [0-9]|GiB|frames/s|^\[(3b|7b)\]" \
  "$OUT/test_gpu_pipeline.log" | head -80
stamp "done (status $status)"
exit $status
