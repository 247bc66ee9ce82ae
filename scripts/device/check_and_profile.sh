#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): one call that checks a change and profiles
# the decode loop. The kernel harness with its sanitizers (scripts/device/kernels.sh) and the GPU
# engine tests (scripts/device/gpu_engine.sh) build and run side by side; then qwenvl-kernel-bench
# --sections gemv (the decode projections, ours against at::linear); then the decode idle profile
# (scripts/bench/decode_idle.sh, 7B) as the engine runs by default, and again with one switch off
# for comparison (SWITCH, default QWENVL_GEMV=0: the projections on cuBLAS; QWENVL_PDL=0: plain
# launches). Summaries go to stdout, whole logs to $OUT/logs.tgz (the device tool brings back few
# files).
#   scripts/device/check_and_profile.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-check-out}
logs=/tmp/qwenvl-check-logs
mkdir -p "$OUT" "$logs"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

OUT=$logs/kernels bash scripts/device/kernels.sh > "$logs/kernels.txt" 2>&1 &
kernels_pid=$!
OUT=$logs/engine bash scripts/device/gpu_engine.sh > "$logs/engine.txt" 2>&1
engine_status=$?
stamp "gpu_engine.sh exit $engine_status"
grep -E "^\[|relative error|ratio|PASSED|FAILED|SKIPPED|error:" "$logs/engine.txt" | grep -v "^\[==\|^\[--\|^\[ RUN\|^\[       OK" | tail -40
wait $kernels_pid
kernels_status=$?
stamp "device_kernels.sh exit $kernels_status"
sed -n '/^memcheck exit/,$p' "$logs/kernels.txt" | head -60
grep -E "^\[  (PASSED|FAILED)|FAILED  \]" "$logs/kernels.txt" | head -20

source scripts/device/build_env.sh
ninja -C build-dev -j "$(nproc)" tools/qwenvl-kernel-bench > "$logs/kernel_bench_build.log" 2>&1 \
  && timeout 200 build-dev/tools/qwenvl-kernel-bench --sections gemv > "$logs/gemv.md" 2> "$logs/gemv.log"
stamp "qwenvl-kernel-bench --sections gemv exit $?"
cat "$logs/gemv.md"; tail -3 "$logs/gemv.log"

BUILD_DIR=build-dev OUT=$logs/idle bash scripts/bench/decode_idle.sh 7b > "$logs/idle.txt" 2>&1
idle_status=$?
stamp "decode_idle.sh exit $idle_status"
cat "$logs/idle.txt"
switch=${SWITCH:-QWENVL_GEMV=0}
env "$switch" BUILD_DIR=build-dev OUT=$logs/idle-switch bash scripts/bench/decode_idle.sh 7b > "$logs/idle-switch.txt" 2>&1
stamp "decode_idle.sh ($switch) exit $?"
sed -n '/^## overlap/,/^Batch 1: GPU time/p' "$logs/idle-switch.txt"
tar -czf "$OUT/logs.tgz" -C "$logs" . 2>/dev/null
[ "$engine_status" = 0 ] && [ "$kernels_status" = 0 ] && [ "$idle_status" = 0 ]
