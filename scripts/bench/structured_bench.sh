#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): issue 17's item 4, what the JSON-schema mask
# costs a decode step. Builds qwenvl-bench (build-bench-dev), writes the random-weight model of SHAPE
# (152k vocabulary), then runs the caption workload at batch 1 and 64 with --phases 1, unconstrained
# and with a schema, alternating, ROUNDS times each, and prints per batch the decode step time of
# each (decode phase / (new tokens - 1), the median over rounds), their difference in µs a step and
# as a share of the unconstrained step. The schema is an object holding an array of exactly 50
# short strings: its documents cannot end within 32 tokens, so every request writes all 32, and it
# walks through structural and string states as a real answer does.
#   scripts/bench/structured_bench.sh [SHAPE (default 7b)] [ROUNDS (default 3)]
# To try it on the CPU (figures mean nothing there): BUILD=build MODEL_DIR=DIR DEVICE=cpu BATCHES=1,2
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-structured-out}
mkdir -p "$OUT"
shape=${1:-7b}
rounds=${2:-3}
device=${DEVICE:-cuda}
batches=${BATCHES:-1,64}
schema='{"type":"object","properties":{"labels":{"type":"array","items":{"type":"string","maxLength":40},"minItems":50,"maxItems":50}},"required":["labels"],"additionalProperties":false}'
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

if [ -z "${BUILD:-}" ]; then
  source scripts/device/build_env.sh
  build=build-bench-dev
  model=$bench_models/$shape
  write_bench_model "$shape" > "$OUT/models.log" 2>&1 &
  writer_pid=$!
  configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
  ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "structured_bench: build failed"; exit 1; }
  stamp "built"
  wait $writer_pid || { echo "structured_bench: model writing failed:"; tail -5 "$OUT/models.log"; exit 1; }
  stamp "model written"
else
  build=$BUILD
  model=${MODEL_DIR:?MODEL_DIR must name a model directory when BUILD is set}
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
status=0
for round in $(seq 1 "$rounds"); do
  for kind in plain schema; do
    stamp "round $round: $kind"
    extra=()
    [ "$kind" = schema ] && extra=(--json-schema "$schema")
    "$build/tools/qwenvl-bench" "$model" --device "$device" --batches "$batches" --runs 3 --phases 1 "${extra[@]}" \
      --json "$OUT/$kind-$round.json" > "$OUT/$kind-$round.md" 2> "$OUT/$kind-$round.log" \
      || { tail -5 "$OUT/$kind-$round.log"; status=1; }
  done
done
python3 - "$OUT" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def steps(kind):
    per = {}
    for r in range(1, rounds + 1):
        try:
            rows = json.load(open(f"{out}/{kind}-{r}.json"))
        except (OSError, ValueError):
            continue
        for row in rows:
            per.setdefault(row["batch"], []).append(row["decode_ms"] / 31.0)
    return {b: statistics.median(v) for b, v in per.items()}
plain, schema = steps("plain"), steps("schema")
print("| batch | decode step, plain (ms) | with the schema (ms) | mask cost (µs a step) | share of the step |")
print("|---|---|---|---|---|")
for b in sorted(plain):
    if b in schema:
        d = schema[b] - plain[b]
        print(f"| {b} | {plain[b]:.3f} | {schema[b]:.3f} | {1000 * d:.1f} | {100 * d / plain[b]:.1f}% |")
PY
stamp "done (status $status)"
exit $status
