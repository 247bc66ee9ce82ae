#!/usr/bin/env bash
# On the GPU machine, in one device call (repository root, .device carried): is this checkout as
# fast as another revision? Builds qwenvl-bench from this checkout and from BASE_SRC (a source tree
# of the other revision, e.g. `git archive REV | tar -x -C .device/base`), writes the random-weight
# model of SHAPE (as caption_bench.sh does), then runs the caption workload of
# docs/BENCHMARK-METHOD.md with each build in turn, ROUNDS times (base, ours, base, ours, ...: drift
# of the machine falls on both), and prints one table: each build's median over the rounds, the
# ratio ours/base, and the spread of each build's rounds (the noise to judge the ratio by).
#   scripts/bench/ab_caption.sh BASE_SRC [SHAPE (default 7b)] [ROUNDS (default 2)]
# BATCHES (default 1,64) picks the batch sizes.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
base_src=$(cd "${1:?usage: ab_caption.sh BASE_SRC [SHAPE] [ROUNDS]}" && pwd)
shape=${2:-7b}
rounds=${3:-2}
batches=${BATCHES:-1,64}
OUT=${OUT:-/tmp/qwenvl-ab-out}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
source scripts/device/build_env.sh

( stamp "write $shape"; write_bench_model "$shape" ) > "$OUT/models.log" 2>&1 &
writer_pid=$!

# Both builds at once, each with half the cores.
build_one() {  # SRC BUILD LOG
  (cd "$1" && configure_build "$2" "$3.configure" -Dtests=false &&
    ninja -C "$2" -j $(( $(nproc) / 2 )) tools/qwenvl-bench) > "$3" 2>&1
}
stamp "build base and ours"
build_one "$base_src" "$base_src/build-ab" "$OUT/build-base.log" & base_pid=$!
build_one "$root" "$root/build-ab" "$OUT/build-ours.log" & ours_pid=$!
wait $base_pid || { grep -E "error|FAILED" "$OUT/build-base.log" | head -20; echo "ab_caption: base build failed"; exit 1; }
wait $ours_pid || { grep -E "error|FAILED" "$OUT/build-ours.log" | head -20; echo "ab_caption: our build failed"; exit 1; }
wait $writer_pid || { tail -5 "$OUT/models.log"; echo "ab_caption: model writing failed"; exit 1; }
stamp "built, model written"

export OMP_NUM_THREADS=8
for r in $(seq 1 "$rounds"); do
  for who in base ours; do
    bin="$base_src/build-ab/tools/qwenvl-bench"; [ $who = ours ] && bin="$root/build-ab/tools/qwenvl-bench"
    stamp "round $r: $who"
    "$bin" "$bench_models/$shape" --batches "$batches" --json "$OUT/$who-$r.json" > "$OUT/$who-$r.md" 2> "$OUT/$who-$r.log" \
      || { echo "$who round $r failed"; tail -5 "$OUT/$who-$r.log"; exit 1; }
  done
done
stamp "done"

python3 - "$OUT" "$rounds" "$shape" "scripts/bench/ab_caption.sh $*" <<'PY' | tee "$OUT/table.md"
import json, statistics, sys, time
from pathlib import Path
out, rounds, shape, command = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
device = (out / "device.txt").read_text().splitlines()[0]
print(f"device: {device}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: {command}\n")
runs = {who: [{r["batch"]: r for r in json.loads((out / f"{who}-{i}.json").read_text())} for i in range(1, rounds + 1)]
        for who in ("base", "ours")}
print("| model | batch | metric | base (median) | ours (median) | ours/base | base spread | ours spread |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
for b in sorted(runs["base"][0]):
    for key, name in (("latency_ms", "latency ms"), ("frames_per_s", "frames/s"), ("peak_gib", "peak GiB")):
        vals = {who: [run[b][key] for run in runs[who]] for who in runs}
        med = {who: statistics.median(v) for who, v in vals.items()}
        spread = {who: (max(v) - min(v)) / med[who] if med[who] else 0.0 for who, v in vals.items()}
        print(f"| {shape} | {b} | {name} | {med['base']:.2f} | {med['ours']:.2f} | {med['ours'] / med['base']:.3f} | "
              f"{100 * spread['base']:.1f}% | {100 * spread['ours']:.1f}% |")
PY
