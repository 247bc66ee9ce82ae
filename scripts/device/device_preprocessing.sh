#!/usr/bin/env bash
# On the GPU machine (the device tool runs it in the repository root, with .device carried): builds
# the engine's device-preprocessing test with meson (-Dcuda=enabled, reusing build-dev when
# scripts/device/gpu_engine.sh made it in the same call) and runs it: the engine's preprocess_image /
# preprocess_video on the GPU against the same calls on the CPU, bit for bit. The transformers-reference
# case needs the preprocess fixtures, which this script does not write, so it is left out.
# Logs go to $OUT.
#   scripts/device/device_preprocessing.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-out}
mkdir -p "$OUT"
source scripts/device/build_env.sh
build=build-dev
configure_build "$build" "$OUT/preprocessing_configure.log" || exit 1
ninja -C "$build" -j "$(nproc)" tests/test_device_preprocessing > "$OUT/preprocessing_build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/preprocessing_build.log" | head -40; echo "device_preprocessing: build failed"; exit 1; }
OMP_NUM_THREADS=8 timeout 300 "$build/tests/test_device_preprocessing" --gtest_color=no \
  --gtest_filter='-*ReferenceImages*' > "$OUT/test_device_preprocessing.log" 2>&1
status=$?
grep -E "^\[  (PASSED|FAILED) |tests? from .* ran|Failure|differ|cuda" "$OUT/test_device_preprocessing.log" | head -40
exit $status
