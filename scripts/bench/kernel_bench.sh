#!/usr/bin/env bash
# On the GPU machine, in one device call (repository root, .device carried): builds
# qwenvl-kernel-bench against the machine's torch (as caption_bench.sh does, in the same build
# folder, so either script reuses the other's build) and runs it: our prefill flash attention
# against torch's SDPA flash and cuDNN backends (TFLOP/s), paged decode attention against the
# measured copy bandwidth and torch's backends (TB/s), and the peak memory of a prefill call at
# 1k/4k/16k tokens. Prints the markdown tables (also in $OUT/kernel_bench.md); about 1.5-2 minutes
# with the build, well under 30 s of it measuring.
#   scripts/bench/kernel_bench.sh [qwenvl-kernel-bench options, e.g. --runs 30 --sections prefill,decode,memory]
# Exit status: the benchmark's (1 when one of its correctness checks failed).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-kernel-bench-out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader
  nvcc --version | tail -1; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

source scripts/device/build_env.sh
build=build-bench-dev

stamp "configure + build"
configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
ninja -C "$build" -j "$(nproc)" tools/qwenvl-kernel-bench > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "kernel_bench: build failed"; exit 1; }
stamp "built"

timeout 300 "$build/tools/qwenvl-kernel-bench" "$@" > "$OUT/kernel_bench.md" 2> "$OUT/kernel_bench.log"
status=$?
stamp "measured (exit $status)"
tail -20 "$OUT/kernel_bench.log"
echo
cat "$OUT/kernel_bench.md"
echo
echo "command: scripts/bench/kernel_bench.sh $*"
exit $status
