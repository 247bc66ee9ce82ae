#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): one call that checks a change and profiles
# the decode loop. The kernel harness with its sanitizers (scripts/device_kernels.sh) and the GPU
# engine tests (scripts/device/gpu_engine.sh) build and run side by side; then the decode idle
# profile (scripts/bench/decode_idle.sh, 7B) without and with overlap_decode, and once more with
# programmatic dependent launch off (QWENVL_PDL=0). Summaries go to stdout, whole logs to
# $OUT/logs.tgz (the device tool brings back few files).
#   scripts/device/check_and_profile.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-check-out}
logs=/tmp/qwenvl-check-logs
mkdir -p "$OUT" "$logs"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

OUT=$logs/kernels bash scripts/device_kernels.sh > "$logs/kernels.txt" 2>&1 &
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

BUILD_DIR=build-dev OVERLAP="0 1" OUT=$logs/idle bash scripts/bench/decode_idle.sh 7b > "$logs/idle.txt" 2>&1
idle_status=$?
stamp "decode_idle.sh exit $idle_status"
cat "$logs/idle.txt"
QWENVL_PDL=0 BUILD_DIR=build-dev OVERLAP="1" OUT=$logs/idle-nopdl bash scripts/bench/decode_idle.sh 7b > "$logs/idle-nopdl.txt" 2>&1
stamp "decode_idle.sh (QWENVL_PDL=0) exit $?"
sed -n '/^## overlap/,/^Batch 1: GPU time/p' "$logs/idle-nopdl.txt"
tar -czf "$OUT/logs.tgz" -C "$logs" . 2>/dev/null
[ "$engine_status" = 0 ] && [ "$kernels_status" = 0 ] && [ "$idle_status" = 0 ]
