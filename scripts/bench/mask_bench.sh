#!/usr/bin/env bash
# What a constrained decode step's token masks cost alone (issue 17, item 4), with Qwen2's real
# 151,936-wide logits: per step at batch 1 and 64, the host's fill of the masks (xgrammar,
# row-parallel on libtorch's inter-op pool, runtime/parallel_rows.h), their apply (one copy and
# kernels::apply_token_bitmask) and the former apply (libtorch ops) beside it; prints a Markdown
# table for docs/BENCHMARKS.md.
#   scripts/bench/mask_bench.sh [BUILD_DIR (default build)] [MODEL_DIR (default the tiny-a fixture)]
# DEVICE=cuda on the GPU machine (the apply is then the CUDA kernel, timed to the device's end);
# THREADS sets OMP_NUM_THREADS (default 8, as structured_bench.sh runs the engine); BATCHES, STEPS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
model=${2:-${QWENVL_FIXTURES:-$root/$build/fixtures}/models/tiny-a}
bench=$root/$build/tools/qwenvl-mask-bench
[ -x "$bench" ] || { echo "missing $bench: build it first (ninja -C $build tools/qwenvl-mask-bench)" >&2; exit 1; }
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "Host: $cpu ($(nproc) cores)"
OMP_NUM_THREADS=${THREADS:-8} "$bench" "$model" --device "${DEVICE:-cpu}" --batches "${BATCHES:-1,64}" --steps "${STEPS:-64}"
