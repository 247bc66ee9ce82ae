#!/usr/bin/env bash
# On the GPU machine (the device tool runs it in the repository root, with .device carried, holding
# debs/ of ../shared/device, wheels/, xgrammar-0.2.9/ and debs-cuda-memory/ from
# scripts/device/fetch_cuda_memory_debs.sh): issue 18's frames in CUDA memory, in one call.
# Unpacks GStreamer's CUDA library and the nvcodec plugin (cudaupload) beside the carried GStreamer,
# builds the engine, the element (-Dgst_cuda=enabled) and the two GPU tests in build-cudamem-dev
# (reused by a second run on the same machine) while the fixture models are written, then runs
#  1. tests/gpu/test_device_frames: frames in CUDA memory against the same frames from host memory,
#     bit for bit, every pixel format, clips mixing both; the engine's answers; what the driver says
#     cannot be read (host memory, strides past the allocation, another context) refused;
#  2. tests/gpu/test_element_cuda_memory: videotestsrc ! cudaupload ! qwenvl against videotestsrc !
#     qwenvl, RGB/BGRx/RGBA/NV12/I420: the same ids, every frame read in CUDA memory.
# Prints one line per test and the summary; logs go to $OUT.
#   scripts/device/cuda_memory.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

[ -d .device/debs-cuda-memory ] || { echo "cuda_memory: .device/debs-cuda-memory is missing: run scripts/device/fetch_cuda_memory_debs.sh here first"; exit 1; }
source scripts/device/build_env.sh
# The extra packages, into the same private prefix (device-env.sh unpacks .device/debs only once).
if [ ! -f /opt/deps/.cuda-memory-done ]; then
  for f in .device/debs-cuda-memory/*.deb; do dpkg -x "$f" /opt/deps; done
  find /opt/deps -name '*.pc' -exec sed -i -E "s#^prefix=/usr#prefix=/opt/deps/usr#; s#^(libdir|includedir)=/usr#\1=/opt/deps/usr#" {} +
  touch /opt/deps/.cuda-memory-done
fi
gstreamer_pkgconfig_stubs
# GStreamer's GL library names GL, EGL, Wayland, X11, udev and DRM development files as private
# requirements, which pkg-config's --cflags insists on: stand-ins where the machine lacks them (the
# libraries themselves come with debs-cuda-memory; nothing here links them directly).
for m in glesv2 gl egl glx wayland-client wayland-cursor wayland-egl x11 x11-xcb gudev-1.0 libdrm gbm; do
  pkg-config --exists "$m" 2>/dev/null || printf 'Name: %s\nDescription: stand-in (private requirement)\nVersion: 9999\nLibs:\nCflags:\n' "$m" > /opt/deps/stub-pkgconfig/$m.pc
done
pkg-config --modversion gstreamer-cuda-1.0 > /dev/null || { echo "cuda_memory: pkg-config finds no gstreamer-cuda-1.0"; exit 1; }

# A build of its own: the other scripts' build-dev is set up without GStreamer's CUDA library (and
# mostly without GStreamer); one of this script's that did not find it either is set up again.
build=build-cudamem-dev
if [ -f "$build/build.ninja" ] && ! grep -q "gstreamer-cuda-1.0 found: YES" "$build/meson-logs/meson-log.txt"; then
  rm -rf "$build"
fi
fixtures=$root/$build/fixtures
(
  [ -f "$fixtures/models/tiny-a/config.json" ] && [ -d "$fixtures/network_cases" ] && exit 0
  python3 scripts/fixtures/make_all.py --out "$fixtures" --wheels .device/wheels --only models network_cases
) > "$OUT/cuda_memory_fixtures.log" 2>&1 &
fixtures_pid=$!

stamp "configure"
configure_build "$build" "$OUT/cuda_memory_configure.log" -Dfixtures_dir="$fixtures" -Dgst_cuda=enabled || { wait $fixtures_pid; exit 1; }
grep -E "element CUDA memory|gstreamer-cuda" "$build/meson-logs/meson-log.txt" | tail -2
stamp "build"
targets="gst-plugin/libgstqwenvl.so tests/gpu/test_device_frames tests/gpu/test_element_cuda_memory"
ninja -C "$build" -j "$(nproc)" $targets > "$OUT/cuda_memory_build.log" 2>&1 \
  || { grep -E "error|FAILED|ERROR" "$OUT/cuda_memory_build.log" | head -40; echo "cuda_memory: build failed"; wait $fixtures_pid; exit 1; }
stamp "built"
wait $fixtures_pid || { tail -20 "$OUT/cuda_memory_fixtures.log"; echo "cuda_memory: fixtures failed"; exit 1; }

export QWENVL_FIXTURES=$fixtures OMP_NUM_THREADS=8
export GST_PLUGIN_PATH=$root/$build/gst-plugin GST_REGISTRY=/tmp/qwenvl-cuda-memory-registry.bin
gst-inspect-1.0 cudaupload > "$OUT/cudaupload.txt" 2>&1 && echo "cudaupload: found" \
  || { echo "cudaupload: not found (see $OUT/cudaupload.txt)"; tail -5 "$OUT/cudaupload.txt"; }
gst-inspect-1.0 qwenvl 2>/dev/null | grep -A3 "SINK template" | head -4
status=0
for t in device_frames element_cuda_memory; do
  stamp "test_$t"
  timeout 300 "$build/tests/gpu/test_$t" --gtest_color=no > "$OUT/test_$t.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[       OK |^\[  FAILED  |tests? from .* ran|Failure|Skipped|no cudaupload|frame-host-time" "$OUT/test_$t.log" | head -40
done
stamp "done (status $status)"
exit $status
