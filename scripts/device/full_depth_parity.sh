#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): the bf16 parity of tests/gpu/test_gpu_real_width
# at FULL depth, once: random-weight 3B and 7B directories with every published layer
# (make_real_width_models.py --full-depth; transformers' fp32 and bf16 logits of the prefill and 32
# decode steps), then our engine's bf16 logits against them. Builds in build-dev (as gpu_engine.sh;
# fixtures are only needed for the tokenizer files). Logs go to $OUT.
#   scripts/device/full_depth_parity.sh [SIZES, default "3b 7b"]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-out}
mkdir -p "$OUT"
sizes=${1:-"3b 7b"}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

source scripts/device/build_env.sh
build=build-dev
fixtures=$build/fixtures
full=$build/full-depth

(
  [ -d "$fixtures/models/tiny-a" ] || python3 scripts/fixtures/make_all.py --out "$fixtures" --wheels .device/wheels --only models || exit 1
  stamp "full-depth models: $sizes"
  PYTHONUNBUFFERED=1 python3 scripts/device/make_real_width_models.py --full-depth --out "$full" \
    --tokenizer-from "$fixtures/models/tiny-a" --sizes $sizes || exit 2
) > "$OUT/full_depth_python.log" 2>&1 &
python_pid=$!

configure_build "$build" "$OUT/configure.log" -Dfixtures_dir="$root/$fixtures" || { wait $python_pid; exit 1; }
ninja -C "$build" -j "$(nproc)" tests/gpu/test_gpu_real_width > "$OUT/full_depth_build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/full_depth_build.log" | head -40; echo "full_depth: build failed"; wait $python_pid; exit 1; }
stamp "built"
wait $python_pid || { echo "full_depth: model writing failed"; tail -20 "$OUT/full_depth_python.log"; exit 1; }
grep "real-width" "$OUT/full_depth_python.log"
filter=$(for s in $sizes; do printf '*Qwen25VL%s:' "$s"; done)
QWENVL_REAL_WIDTH_MODELS=$root/$full OMP_NUM_THREADS=8 timeout 300 "$build/tests/gpu/test_gpu_real_width" \
  --gtest_color=no --gtest_filter="$filter" > "$OUT/full_depth_test.log" 2>&1
status=$?
grep -E "^\[  (PASSED|FAILED) |bf16 relative|Failure" "$OUT/full_depth_test.log"
stamp "done (status $status)"
exit $status
