#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): how busy a decode step keeps the GPU at
# batch 1 and 64, from a CUPTI activity trace taken by qwenvl-bench itself (--idle-profile 1; the
# machine has no Nsight Systems, torch's wheel brings CUPTI). For each batch size: the timed runs,
# then one more run under the trace, and a table of the decode window (first to last decode step,
# a step being one decode graph launch), the GPU's busy time in it (kernels, copies and sets of
# every stream, overlaps counted once), the idle fraction, and the same over the steady cycles (step
# to step, no prefill of a newly admitted request inside). Reuses build-bench-dev and the
# random-weight model of caption_bench.sh / phase_split.sh when present (writes it otherwise).
#   scripts/bench/decode_idle.sh [SHAPE, default 7b]    (CUDA_GRAPHS=0: the same without graphs;
#   OVERLAP="0 1": once without EngineOptions::overlap_decode, then once with it, in the same call;
#   unset: the engine's default, on for CUDA)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-idle-out}
mkdir -p "$OUT"
shape=${1:-7b}
source scripts/device/build_env.sh
build=${BUILD_DIR:-build-bench-dev}
models=$bench_models
write_bench_model "$shape" > "$OUT/idle_models.log" 2>&1 &
writer=$!
configure_build "$build" "$OUT/idle_configure.log" -Dtests=false || exit 1
ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench > "$OUT/idle_build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/idle_build.log" | head -20; exit 1; }
grep -h "idle-profile: CUPTI" "$build/meson-logs/meson-log.txt" | tail -1 | grep . \
  || echo "decode_idle: the configure log names no CUPTI (qwenvl-bench says whether it has one)"
wait $writer || { echo "decode_idle: model writing failed"; tail -5 "$OUT/idle_models.log"; exit 1; }
status=0
for overlap in ${OVERLAP:-default}; do
  echo "## overlap-decode $overlap"
  flag=()
  [ "$overlap" = default ] || flag=(--overlap-decode "$overlap")
  OMP_NUM_THREADS=8 "$build/tools/qwenvl-bench" "$models/$shape" --batches 1,64 --runs 2 --idle-profile 1 \
    --cuda-graphs "${CUDA_GRAPHS:-1}" "${flag[@]}" 2> "$OUT/idle_bench_$overlap.log" | tee "$OUT/idle_table_$overlap.md"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  grep -E "^B=|qwenvl-bench:|GPU activity profile" "$OUT/idle_bench_$overlap.log"
done
exit "$status"
