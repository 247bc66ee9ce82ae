#!/usr/bin/env bash
# On the GPU machine (the device tool runs it in the repository root, with .device carried): builds
# the engine and its GPU tests with meson against that machine's torch, writes the fixture models and
# their transformers references, writes the real-width bf16 models (make_real_width_models.py), and
# runs tests/gpu. The build and the two Python steps run side by side. Logs go to $OUT.
# Needs .device (see /work/shared/device/README.md): debs with the engine's build dependencies and
# wheels/ with the dashscope wheel (Qwen2's BPE ranks, for the fixture tokenizers).
#   scripts/device/gpu_engine.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; g++ --version | head -1;
  meson --version; python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

source scripts/device/build_env.sh
build=build-dev
fixtures=$build/fixtures
real=$build/real-width

# The Python side (CPU for the fixtures, then the GPU for the real-width models) while the build runs.
(
  stamp "fixtures: models, network_cases"
  python3 scripts/fixtures/make_all.py --out "$fixtures" --wheels .device/wheels --only models network_cases || exit 1
  stamp "real-width models"
  PYTHONUNBUFFERED=1 python3 scripts/device/make_real_width_models.py --out "$real" \
    --tokenizer-from "$fixtures/models/tiny-a" || exit 2
  stamp "fixtures: sample_media (the CLI's references)"
  python3 scripts/fixtures/make_all.py --out "$fixtures" --wheels .device/wheels --only sample_media \
    || echo "gpu_engine: sample_media fixtures failed (the CLI check below will fail)"
  stamp "python done"
) > "$OUT/python.log" 2>&1 &
python_pid=$!

stamp "configure"
configure_build "$build" "$OUT/configure.log" -Dfixtures_dir="$root/$fixtures" || { wait $python_pid; exit 1; }
tail -12 "$OUT/configure.log"
stamp "build"
targets="tests/gpu/test_gpu_network tests/gpu/test_gpu_real_width tests/gpu/test_gpu_engine tests/gpu/test_decode_graphs"
ninja -C "$build" -j "$(nproc)" $targets > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "gpu_engine: build failed"; wait $python_pid; exit 1; }
stamp "built"
wait $python_pid
python_status=$?
stamp "python exit $python_status"
tail -6 "$OUT/python.log"

export QWENVL_FIXTURES=$root/$fixtures QWENVL_REAL_WIDTH_MODELS=$root/$real OMP_NUM_THREADS=8
status=0
for t in gpu_network gpu_engine gpu_real_width decode_graphs; do
  stamp "test_$t"
  timeout 240 "$build/tests/gpu/test_$t" --gtest_color=no > "$OUT/test_$t.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED) |tests? from .* ran|Failure|bf16 relative|greedy ids equal|decode graphs vs eager" "$OUT/test_$t.log" | head -40
done
# qwenvl-cli --device cuda against transformers' ids (tests/tools/test_qwenvl_cli.cpp, OnCuda). The
# machine has no OpenCV imgcodecs, so the CLI is built with its PNG reader (libpng, carried).
stamp "qwenvl-cli --device cuda"
if ninja -C "$build" -j "$(nproc)" tools/qwenvl-cli tests/tools/test_qwenvl_cli > "$OUT/build_cli.log" 2>&1; then
  QWENVL_CLI=$root/$build/tools/qwenvl-cli timeout 240 "$build/tests/tools/test_qwenvl_cli" --gtest_color=no \
    --gtest_filter='*OnCuda*' > "$OUT/test_cli_cuda.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? from .* ran|Failure" "$OUT/test_cli_cuda.log" | head -20
else
  grep -E "error|FAILED|ERROR" "$OUT/build_cli.log" | head -20; echo "gpu_engine: qwenvl-cli build failed"; status=1
fi
stamp "done (status $status)"
exit $status
