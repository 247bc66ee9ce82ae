#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): where a caption batch's time goes. Builds
# qwenvl-bench and qwenvl-kernel-bench (build-bench-dev), writes the random-weight model at SHAPE's
# real shape, prints the bf16 matmul rate (cuBLAS at a batch prefill's shapes) and qwenvl-bench with
# --phases 1 at batch 1 and 64: the vision / prefill / decode split of a run.
#   scripts/bench/phase_split.sh [SHAPE, default 7b]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-phase-out}
mkdir -p "$OUT"
shape=${1:-7b}
source scripts/device/build_env.sh
build=build-bench-dev
models=$bench_models
write_bench_model "$shape" > "$OUT/phase_models.log" 2>&1 &
writer=$!
configure_build "$build" "$OUT/phase_configure.log" -Dtests=false || exit 1
ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench tools/qwenvl-kernel-bench > "$OUT/phase_build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/phase_build.log" | head -20; exit 1; }
"$build/tools/qwenvl-kernel-bench" --sections matmul --runs 10 2>&1 | sed -n '/^## bf16 matmul/,$p' | grep -v "^checks"
wait $writer || { echo "phase_split: model writing failed"; tail -5 "$OUT/phase_models.log"; exit 1; }
OMP_NUM_THREADS=8 "$build/tools/qwenvl-bench" "$models/$shape" --batches 1,64 --runs 2 --phases 1 2> "$OUT/phase_bench.log"
