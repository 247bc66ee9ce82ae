#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): the vision tower alone against the bf16
# matmul rate (issue 18, item 2). Builds qwenvl-vision-bench (build-bench-dev), writes the
# random-weight model of SHAPE unless an earlier script did, and prints its table: one packed
# forward of N 448x448 frames, the achieved TFLOP/s and its share of an 8192^3 product's rate in the
# same run, then the kernels of the largest N's forward by time (CUPTI).
#   scripts/bench/vision_bench.sh [SHAPE (default 7b)] [FRAMES (default 1,8,32,64)]
# To try it on the CPU (figures mean nothing there): BUILD=build MODEL_DIR=DIR DEVICE=cpu FRAMES=1
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-vision-out}
mkdir -p "$OUT"
shape=${1:-7b}
frames=${2:-${FRAMES:-1,8,32,64}}
if [ -z "${BUILD:-}" ]; then
  source scripts/device/build_env.sh
  build=build-bench-dev
  model=$bench_models/$shape
  write_bench_model "$shape" > "$OUT/models.log" 2>&1 &
  writer_pid=$!
  configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
  wait $writer_pid || { echo "vision_bench: model writing failed:"; tail -5 "$OUT/models.log"; exit 1; }
else
  build=$BUILD
  model=${MODEL_DIR:?MODEL_DIR must name a model directory when BUILD is set}
fi
ninja -C "$build" -j "$(nproc)" tools/qwenvl-vision-bench > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "vision_bench: build failed"; exit 1; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
echo "command: $build/tools/qwenvl-vision-bench $model --frames $frames --device ${DEVICE:-cuda}"
"$build/tools/qwenvl-vision-bench" "$model" --frames "$frames" --device "${DEVICE:-cuda}"
