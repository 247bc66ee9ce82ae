#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): how busy a decode step keeps the GPU, from
# an Nsight Systems profile of qwenvl-bench (decode graphs on) at batch 1 and 64: over the decode
# phase of each run (first to last paged-decode kernel), the fraction of time with no kernel or copy
# running on the GPU. Reuses build-bench-dev and the random-weight model of caption_bench.sh /
# element_bench.sh when present (writes it otherwise).
#   scripts/bench/decode_idle.sh [SHAPE, default 7b]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-idle-out}
mkdir -p "$OUT"
shape=${1:-7b}
nsys=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
[ -n "$nsys" ] || { echo "decode_idle: nsys not found on this machine"; exit 2; }
source .device/device-env.sh .device/debs
find /opt/deps -name '*.pc' -exec sed -i -E 's#^(libdir|includedir)=/usr#\1=/opt/deps/usr#' {} +
export CUDA_PATH=$(dirname "$(dirname "$(command -v nvcc)")")
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
build=${BUILD_DIR:-build-bench-dev}
models=/tmp/qwenvl-bench-models
if [ ! -f "$models/$shape.done" ]; then
  python3 scripts/bench/write_random_model.py "$models/$shape" --shape "$shape" --tokenizer-from .device/bench-tok \
    > "$OUT/idle_models.log" 2>&1 && touch "$models/$shape.done" || { echo "decode_idle: model writing failed"; exit 1; }
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dtorch_dir="$torch_dir" -Dcuda=enabled -Dtests=false > "$OUT/idle_configure.log" 2>&1 || exit 1
fi
ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench > "$OUT/idle_build.log" 2>&1 || { tail -20 "$OUT/idle_build.log"; exit 1; }
for b in 1 64; do
  OMP_NUM_THREADS=8 "$nsys" profile --trace=cuda --cuda-graph-trace=node --force-overwrite=true -o "$OUT/decode-b$b" \
    "$build/tools/qwenvl-bench" "$models/$shape" --batches "$b" --runs 1 > "$OUT/idle_b$b.log" 2>&1 || { tail -5 "$OUT/idle_b$b.log"; }
  "$nsys" stats --report cuda_gpu_trace --format csv --force-export=true --output "$OUT/trace-b$b" "$OUT/decode-b$b.nsys-rep" \
    > /dev/null 2>&1 || echo "decode_idle: nsys stats failed for batch $b"
done
python3 - "$OUT" "$shape" <<'PY'
import csv, glob, sys
out, shape = sys.argv[1], sys.argv[2]
print(f"\nGPU idle during decode ({shape}, decode graphs on; nsys cuda_gpu_trace, kernels and copies):\n")
print("| batch | decode phases | decode span ms | GPU busy ms | idle fraction |")
print("|---:|---:|---:|---:|---:|")
for b in (1, 64):
    files = glob.glob(f"{out}/trace-b{b}*.csv")
    if not files:
        print(f"| {b} | n/a | | | |"); continue
    rows = list(csv.DictReader(open(files[0])))
    ev = []
    for r in rows:
        start = float(r.get("Start (ns)") or r.get("Start") or 0); dur = float(r.get("Duration (ns)") or r.get("Duration") or 0)
        ev.append((start, start + dur, r.get("Name", "")))
    ev.sort()
    decode = [e for e in ev if "paged_decode" in e[2]]
    if not decode:
        print(f"| {b} | no decode kernels | | | |"); continue
    # Runs (warm-up + timed) are separated by gaps far longer than a step: split the decode kernels there.
    runs, cur = [], [decode[0]]
    for e in decode[1:]:
        if e[0] - cur[-1][1] > 50e6: runs.append(cur); cur = [e]
        else: cur.append(e)
    runs.append(cur)
    span = busy = 0.0
    for run in runs:
        lo, hi = run[0][0], run[-1][1]
        inside = sorted((max(s, lo), min(e, hi)) for s, e, _ in ev if e > lo and s < hi)
        u, end = 0.0, lo
        for s, e in inside:
            if e <= end: continue
            u += e - max(s, end); end = e
        span += hi - lo; busy += u
    print(f"| {b} | {len(runs)} | {span/1e6:.1f} | {busy/1e6:.1f} | {1 - busy/span:.3f} |")
PY
