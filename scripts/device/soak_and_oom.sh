#!/usr/bin/env bash
# On the GPU machine (the device tool runs it in the repository root, with .device carried): issue
# 15's GPU soak and GPU out-of-memory burst, in one call of about 8 minutes on an H100 (16 cores).
# Builds the element, qwenvl-launch and tests/gpu/test_gpu_engine against that machine's torch while
# the random-weight 7B directory is written (build_env.sh's write_bench_model), then:
#  1. scripts/soak.sh on cuda with that 7B: STREAMS live 640x480 NV12 streams at 10 fps into qwenvl
#     elements sharing one engine, async, drop-oldest, for SOAK_S seconds; host RSS and the card's
#     used memory (nvidia-smi) sampled every 10 s and printed every 30 s, each one's growth after a
#     60 s warm-up checked against its bound (RSS_BOUND_MB, DEVICE_BOUND_MB); every frame must end
#     answered, dropped or failed, the counts adding up per stream and in all;
#  2. GpuEngineMemory.BurstOfLargeFrames...: the same 7B with a 1 GiB KV budget and the caching
#     allocator capped 3 GiB above what the warm engine holds, a burst of 17 frames up to
#     4096x4096: prefills retried in halves, what cannot fit fails with the reason, the engine
#     answers afterwards with every KV block back.
# Logs go to $OUT (soak/ keeps the soak's samples and answers).
#   scripts/device/soak_and_oom.sh     env: STREAMS (12), SOAK_S (180)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-out}
mkdir -p "$OUT"
streams=${STREAMS:-12}
soak_s=${SOAK_S:-180}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

source scripts/device/build_env.sh
gstreamer_pkgconfig_stubs
build=build-soak-dev

write_bench_model 7b > "$OUT/model.log" 2>&1 &
writer_pid=$!

stamp "configure"
if [ ! -f "$build/build.ninja" ] || ! grep -q "gstreamer-video-1.0 found: YES" "$build/meson-logs/meson-log.txt"; then
  rm -rf "$build"
  configure_build "$build" "$OUT/configure.log" || { wait $writer_pid; exit 1; }
fi
grep -iE "gstreamer-video" "$OUT/configure.log" | head -2
stamp "build"
ninja -C "$build" -j "$(nproc)" engine/libqwenvl-engine.so gst-plugin/libgstqwenvl.so tools/qwenvl-launch \
  tests/gpu/test_gpu_engine > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "soak_and_oom: build failed"; wait $writer_pid; exit 1; }
stamp "built"
wait $writer_pid || { tail -5 "$OUT/model.log"; echo "soak_and_oom: writing the 7B model failed"; exit 1; }
stamp "model ready"

status=0
stamp "soak: $streams streams, $soak_s s"
BUILD=$build MODEL=$bench_models/7b DEVICE=cuda STREAMS=$streams DURATION_S=$soak_s WIDTH=640 HEIGHT=480 \
  WARMUP_S=60 SAMPLE_S=10 REPORT_S=30 DROP_POLICY=drop-oldest MAX_NEW_TOKENS=16 SOAK_OUT=$OUT/soak OMP_NUM_THREADS=8 \
  timeout $(( soak_s + 100 )) scripts/soak.sh > "$OUT/soak.txt" 2>&1 || status=1
cat "$OUT/soak.txt"

stamp "out-of-memory burst"
QWENVL_BURST_MODEL=$bench_models/7b OMP_NUM_THREADS=8 timeout 120 "$build/tests/gpu/test_gpu_engine" --gtest_color=no \
  --gtest_filter='GpuEngineMemory.Burst*' > "$OUT/oom_burst.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? from .* ran|\[burst\]|Failure|Expected|Which is|request [0-9]" "$OUT/oom_burst.log" | head -40
stamp "done (status $status)"
exit $status
