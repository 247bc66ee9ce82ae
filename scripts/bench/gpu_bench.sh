#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried), in one device call: the caption workload
# side by side with transformers for 3B and 7B (caption_bench.sh), then the kernel tables
# (kernel_bench.sh: flash and decode attention against torch's SDPA backends and the copy bandwidth,
# peak memory against context), both from the same build on the same GPU. About 8-9 minutes.
#   scripts/bench/gpu_bench.sh [CAPTION_BUDGET_S, default 470]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-gpu-bench-out}
mkdir -p "$OUT/caption" "$OUT/kernels"
OUT=$OUT/caption "$root/scripts/bench/caption_bench.sh" "${1:-470}" "3b 7b" 2>&1 | grep -vE "^B=|Loading|Writing"
caption=$?
OUT=$OUT/kernels timeout 170 "$root/scripts/bench/kernel_bench.sh" --runs 20 2>&1 | sed -n '/^# qwenvl kernel benchmark/,$p'
exit $caption
