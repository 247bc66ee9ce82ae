#!/usr/bin/env bash
# On the GPU machine, in one device call (repository root, .device carried): the paged decode
# attention kernel's checks and figures without a meson build. Builds the kernels and their harness
# as scripts/device/kernels.sh does (build-dev-kernels, every test run; memcheck with --memcheck),
# then qwenvl-kernel-bench against that library, and runs its decode section (batch 64 at 1k-16k
# against the copy bandwidth and SDPA; the graph-capacity and batch-1 table). About 2-3 minutes.
#   scripts/device/decode_attention.sh [--memcheck] [bench options, e.g. --runs 30]
# Logs and tables under $OUT (kernels/, decode_bench.md).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-decode-out}
mkdir -p "$OUT/kernels"
memcheck=--no-memcheck
if [ "${1:-}" = "--memcheck" ]; then memcheck=""; shift; fi

OUT=$OUT/kernels scripts/device/kernels.sh $memcheck > "$OUT/kernels.log" 2>&1
kstatus=$?
grep -E "ratio|Failure|FAILED|PASSED|ERROR SUMMARY|exit:|build:" "$OUT/kernels.log" | grep -iE "decode|Failure|FAILED|PASSED|ERROR SUMMARY|exit:|build:" | tail -60
echo "device_kernels exit: $kstatus"
[ -f build-dev-kernels/libqwenvl-kernels.so ] || { echo "decode_attention: no kernels library"; exit 1; }

torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
cuda_home=$(dirname "$(dirname "$(command -v nvcc)")")
g++ -std=c++17 -O2 -I"$root" -I"$root/engine/include" -isystem "$torch_dir/include" \
  -isystem "$torch_dir/include/torch/csrc/api/include" -I"$cuda_home/include" -D_GLIBCXX_USE_CXX11_ABI=1 \
  -DQWENVL_WITH_CUDA tools/qwenvl-kernel-bench.cpp -o build-dev-kernels/qwenvl-kernel-bench \
  -Lbuild-dev-kernels -Wl,-rpath,"$root/build-dev-kernels" -lqwenvl-kernels \
  -L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10 \
  -Wl,--as-needed -L"$cuda_home/lib64" -Wl,-rpath,"$cuda_home/lib64" -lcudart > "$OUT/bench_build.log" 2>&1 \
  || { tail -30 "$OUT/bench_build.log"; echo "decode_attention: bench build failed"; exit 1; }
timeout 200 build-dev-kernels/qwenvl-kernel-bench --sections decode "$@" > "$OUT/decode_bench.md" 2> "$OUT/decode_bench.log"
bstatus=$?
tail -5 "$OUT/decode_bench.log"
cat "$OUT/decode_bench.md"
echo "command: scripts/device/decode_attention.sh $memcheck $*; bench exit $bstatus"
[ $kstatus -eq 0 ] && [ $bstatus -eq 0 ]
