#!/usr/bin/env bash
# On the GPU machine, in one device call (repository root, .device carried): builds qwenvl-bench
# against the machine's torch (as scripts/device/gpu_engine.sh does), writes random-weight 3B and 7B
# model directories (scripts/bench/write_random_model.py; tokenizer files from .device/bench-tok),
# runs the caption workload of docs/BENCHMARK-METHOD.md through transformers and through qwenvl on
# the same directory, and prints one table side by side. The build and the model writing run side by
# side; the benchmarks start once every model is written (a writer beside them slowed transformers'
# launch-bound runs by up to 60%), and run alone. A shape runs only if enough of the budget is left.
#   scripts/bench/caption_bench.sh [BUDGET_S (default 560)] [SHAPES (default "3b 7b")]
# HF_FROM=DIR reuses transformers' figures (hf-<shape>.json) from an earlier call instead of running
# transformers again (when device time is short; the table then says so).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-bench-out}
mkdir -p "$OUT"
budget=${1:-560}
shapes=${2:-"3b 7b"}
batches=${BATCHES:-1,8,32,64}
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
stamp() { echo "[$(elapsed) s] $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1;
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

source scripts/device/build_env.sh
build=build-bench-dev
models=$bench_models

# Model directories (CPU) while the engine builds.
(
  for shape in $shapes; do
    [ -f "$models/$shape.done" ] && continue  # written by an earlier script on this machine
    stamp "write $shape"
    write_bench_model "$shape" || exit 1
  done
) > "$OUT/models.log" 2>&1 &
writer_pid=$!

stamp "configure + build"
configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "caption_bench: build failed"; exit 1; }
stamp "built"
wait $writer_pid || { echo "model writing failed:"; tail -5 "$OUT/models.log"; exit 1; }
stamp "models written"

export OMP_NUM_THREADS=8 PYTHONUNBUFFERED=1
for shape in $shapes; do
  left=$(( budget - $(elapsed) ))
  need=150; [ -n "${HF_FROM:-}" ] && need=40
  if [ ! -f "$models/$shape.done" ] || [ "$left" -lt "$need" ]; then stamp "skip $shape: ${left} s left"; continue; fi
  if [ -n "${HF_FROM:-}" ]; then
    cp "$HF_FROM/hf-$shape.json" "$OUT/" && echo "transformers $shape: figures from an earlier call ($HF_FROM)"
  else
  stamp "$shape: transformers"
  timeout $(( left / 2 )) python3 scripts/bench/transformers_caption.py "$models/$shape" --batches "$batches" \
    --json "$OUT/hf-$shape.json" > "$OUT/hf-$shape.md" 2> "$OUT/hf-$shape.log" || { echo "transformers $shape failed"; tail -5 "$OUT/hf-$shape.log"; }
  fi
  left=$(( budget - $(elapsed) ))
  stamp "$shape: qwenvl"
  timeout "$left" "$build/tools/qwenvl-bench" "$models/$shape" --batches "$batches" --json "$OUT/ours-$shape.json" \
    > "$OUT/ours-$shape.md" 2> "$OUT/ours-$shape.log" || { echo "qwenvl $shape failed"; tail -5 "$OUT/ours-$shape.log"; }
  cat "$OUT/hf-$shape.log" "$OUT/ours-$shape.log" 2>/dev/null | grep -E "^B=|qwenvl-bench:"
done
stamp "done"

command="scripts/bench/caption_bench.sh $*"
python3 - "$OUT" "$command" $shapes <<'EOF' | tee "$OUT/table.md"
import json, sys, time
from pathlib import Path
out = Path(sys.argv[1])
device = (out / "device.txt").read_text().splitlines()[0]
print(f"device: {device}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: {sys.argv[2]}\n")
print("| model | batch | qwenvl latency ms | transformers latency ms | latency ratio (ours/tf) | qwenvl frames/s | "
      "transformers frames/s | frames/s ratio (ours/tf) | qwenvl TTFT ms | transformers prefill ms | "
      "qwenvl decode tok/s | transformers decode tok/s | qwenvl peak GiB | transformers peak GiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for shape in sys.argv[3:]:
    load = lambda name: {r["batch"]: r for r in json.loads((out / name).read_text())} if (out / name).exists() else {}
    ours, tf = load(f"ours-{shape}.json"), load(f"hf-{shape}.json")
    for b in sorted(set(ours) | set(tf)):
        o, t = ours.get(b), tf.get(b)
        f = lambda r, k, d=1: f"{r[k]:.{d}f}" if r else "n/a"
        ratio = lambda a, c: f"{a / c:.2f}" if o and t else "n/a"
        print(f"| {shape} | {b} | {f(o,'latency_ms')} | {f(t,'latency_ms')} | "
              f"{ratio(o['latency_ms'], t['latency_ms']) if o and t else 'n/a'} | {f(o,'frames_per_s',2)} | "
              f"{f(t,'frames_per_s',2)} | {ratio(o['frames_per_s'], t['frames_per_s']) if o and t else 'n/a'} | "
              f"{f(o,'ttft_ms')} | {f(t,'ttft_ms')} | {f(o,'decode_tokens_per_s')} | {f(t,'decode_tokens_per_s')} | "
              f"{f(o,'peak_gib',2)} | {f(t,'peak_gib',2)} |")
EOF
