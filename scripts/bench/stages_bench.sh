#!/usr/bin/env bash
# Issue 14 item 7's last clause in one device call (repository root, .device carried): what pipeline
# stages sharing one GPU cost against one stage, at full depth, under a steady load. Builds
# qwenvl-bench (build-bench-dev) while the random-weight model of SHAPE is written, then, alone on
# the GPU, the saturated mode (IN_FLIGHT requests kept in flight, WARMUP_S s of warm-up, a
# DURATION_S s window) for each placement in turn, ROUNDS times alternating (so that a drift of the
# card's clocks falls on both):
#   one stage:   --device cuda:0
#   two stages:  --devices cuda:0,cuda:0 --placement pipeline (the planner's cut, one micro-batch:
#                stages sharing a card default to one)
# and prints the frames/s of each run, the median of each, and staged / one stage.
#   scripts/bench/stages_bench.sh [SHAPE (default 7b)]
# Environment: IN_FLIGHT (64), DURATION_S (30), WARMUP_S (5), ROUNDS (2), STAGES (cuda:0,cuda:0).
# On the CPU (figures mean nothing there): BUILD=build MODEL_DIR=DIR DEVICE=cpu STAGES=cpu,cpu
#   IN_FLIGHT=2 DURATION_S=3 WARMUP_S=1 ROUNDS=1 scripts/bench/stages_bench.sh tiny
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-stages-out}
mkdir -p "$OUT"
rm -f "$OUT"/*.json
shape=${1:-7b}
device=${DEVICE:-cuda:0}
stages=${STAGES:-cuda:0,cuda:0}
in_flight=${IN_FLIGHT:-64} duration=${DURATION_S:-30} warmup=${WARMUP_S:-5} rounds=${ROUNDS:-2}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

if [ -z "${BUILD:-}" ]; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; date -u; } > "$OUT/device.txt" 2>&1
  source scripts/device/build_env.sh
  build=build-bench-dev
  model=$bench_models/$shape
  write_bench_model "$shape" > "$OUT/models.log" 2>&1 &
  writer_pid=$!
  configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
  ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "stages_bench: build failed"; exit 1; }
  wait $writer_pid || { echo "stages_bench: model writing failed:"; tail -5 "$OUT/models.log"; exit 1; }
  stamp "built, model written"
else
  build=$BUILD
  model=${MODEL_DIR:?MODEL_DIR must name a model directory when BUILD is set}
  { echo "$device (BUILD=$build, on this machine)"; date -u; } > "$OUT/device.txt"
fi
cat "$OUT/device.txt"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

run() {  # NAME ARGS...: one saturated run; its frames/s on stdout
  local name=$1; shift
  "$build/tools/qwenvl-bench" "$model" "$@" --in-flight "$in_flight" --duration-s "$duration" --warmup-s "$warmup" \
    --json "$OUT/$name.json" > "$OUT/$name.md" 2> "$OUT/$name.log" \
    || { tail -5 "$OUT/$name.log" >&2; echo "stages_bench: $name failed" >&2; return 1; }
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["frames_per_s"])' "$OUT/$name.json"
}
one=() staged=()
for r in $(seq "$rounds"); do
  f=$(run "one-$r" --device "$device") || exit 1
  one+=("$f"); stamp "round $r, one stage ($device): $f frames/s"
  f=$(run "staged-$r" --device "$device" --devices "$stages" --placement pipeline) || exit 1
  staged+=("$f"); stamp "round $r, stages ($stages): $f frames/s"
done
grep -h "^|" "$OUT/staged-1.md" | head -3
python3 - "$shape" "$device" "$stages" "$in_flight" "$duration" "${one[*]}" "${staged[*]}" <<'EOF'
import statistics, sys
shape, device, stages, n, duration, one, staged = sys.argv[1:]
one, staged = [float(x) for x in one.split()], [float(x) for x in staged.split()]
m1, ms = statistics.median(one), statistics.median(staged)
print(f"\n| model | in flight | window s | one stage ({device}) frames/s | stages ({stages}) frames/s | staged / one |")
print("|---|---:|---:|---|---|---:|")
print(f"| {shape} | {n} | {duration} | {', '.join(f'{x:.2f}' for x in one)} (median {m1:.2f}) | "
      f"{', '.join(f'{x:.2f}' for x in staged)} (median {ms:.2f}) | **{ms / m1:.3f}** |")
EOF
echo "device: $(head -1 "$OUT/device.txt"); $(date -u '+%Y-%m-%d %H:%M UTC'); command: scripts/bench/stages_bench.sh $*"
