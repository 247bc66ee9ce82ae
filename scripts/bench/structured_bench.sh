#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): issue 17's item 4, what the JSON-schema mask
# costs a decode step. Builds qwenvl-bench and qwenvl-mask-bench (build-bench-dev), writes the random-weight model of SHAPE
# (152k vocabulary), then runs the caption workload at batch 1 and 64, unconstrained and with a
# schema, alternating, ROUNDS times each, and prints per batch the steady decode step of each (the
# engine's own clock, qwenvl::DecodeHostTimes: the wall time of the steps with no prefill queued since
# the step before, so all rows only decode; the median over rounds), their difference in µs a step and
# as a share of the unconstrained step. Beside it, the step by the wall clock of the requests
# ((latency - time to first token) / (new tokens - 1)): the prefills of rows admitted while others
# decode lie inside it, so at batch 64 it varies by milliseconds from run to run (2026-12-07: 11.5 to
# 14.5 ms plain on one H100), more than the mask costs. These runs go without --phases: it
# synchronises the device after every decode step, so the host could no longer fill a step's masks
# while the device runs its forward, which is the engine's design (runtime/token_masks.h). One more
# run of each with --phases 1 gives the device's decode phase a step, beside. Then the step's parts
# (fill, launch, wait, grammar accept, tokens). The schema is an object holding an array of exactly 50
# short strings: its documents cannot end within 32 tokens, so every request writes all 32, and it
# walks through structural and string states as a real answer does. Last, qwenvl-mask-bench's table:
# the masks alone per step at the same batches (fill, accept, copy + kernel, and the former libtorch apply).
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
  ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench tools/qwenvl-mask-bench > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "structured_bench: build failed"; exit 1; }
  stamp "built"
  wait $writer_pid || { echo "structured_bench: model writing failed:"; tail -5 "$OUT/models.log"; exit 1; }
  stamp "model written"
else
  build=$BUILD
  model=${MODEL_DIR:?MODEL_DIR must name a model directory when BUILD is set}
  # Brought up to date for the two tools (a no-op when they are), so the figures are this tree's.
  ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench tools/qwenvl-mask-bench > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "structured_bench: build failed"; exit 1; }
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
status=0
# ROUND "phases" is the one run with --phases 1 (the device column); the others give the wall clock.
for round in $(seq 1 "$rounds") phases; do
  for kind in plain schema; do
    stamp "round $round: $kind"
    extra=()
    [ "$kind" = schema ] && extra=(--json-schema "$schema")
    [ "$round" = phases ] && extra+=(--phases 1)
    "$build/tools/qwenvl-bench" "$model" --device "$device" --batches "$batches" --runs 3 "${extra[@]}" \
      --json "$OUT/$kind-$round.json" > "$OUT/$kind-$round.md" 2> "$OUT/$kind-$round.log" \
      || { tail -5 "$OUT/$kind-$round.log"; status=1; }
  done
done
python3 - "$OUT" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
# The steady decode step (the engine's clock, steps with no prefill since the one before) is the
# measure; beside it the step by the wall clock, (latency - time to first token) / (new tokens - 1),
# from the same runs, and the engine's decode phase (the forward alone, synchronised: the mask's fill,
# copy and kernel lie outside it) from the --phases run.
def load(name):
    try:
        return json.load(open(f"{out}/{name}.json"))
    except (OSError, ValueError):
        return []
def steps(kind):
    wall, phase = {}, {}
    for r in range(1, rounds + 1):
        for row in load(f"{kind}-{r}"):
            wall.setdefault(row["batch"], []).append((row["latency_ms"] - row["ttft_ms"]) / (row["new_tokens"] - 1))
    for row in load(f"{kind}-phases"):
        phase.setdefault(row["batch"], []).append(row["decode_ms"] / (row["new_tokens"] - 1))
    med = lambda d: {b: statistics.median(v) for b, v in d.items()}
    return med(wall), med(phase)
(plain, plain_phase), (schema, schema_phase) = steps("plain"), steps("schema")
def steady(kind):
    got = {}
    for r in range(1, rounds + 1):
        for row in load(f"{kind}-{r}"):
            if row.get("steady_steps", 0) > 0:
                got.setdefault(row["batch"], []).append(row["steady_step_us"] / 1000)
    return {b: statistics.median(v) for b, v in got.items()}
plain_steady, schema_steady = steady("plain"), steady("schema")
print("| batch | steady decode step, plain (ms) | with the schema (ms) | mask cost (µs a step) | share of the step | "
      "wall-clock step, plain / schema (ms) | device decode phase a step, plain / schema (ms) |")
print("|---|---|---|---|---|---|---|")
for b in sorted(plain):
    if b in schema:
        p, q = plain_steady.get(b, float("nan")), schema_steady.get(b, float("nan"))
        print(f"| {b} | {p:.3f} | {q:.3f} | {1000 * (q - p):.1f} | {100 * (q - p) / p:.1f}% | "
              f"{plain[b]:.3f} / {schema[b]:.3f} | "
              f"{plain_phase.get(b, float('nan')):.3f} / {schema_phase.get(b, float('nan')):.3f} |")
# The inference thread's step by part (qwenvl::DecodeHostTimes, clock reads only), from the runs
# without --phases: where the schema's extra time a step sits on the host.
parts = ["step_fill_us", "step_launch_us", "step_wait_us", "step_grammar_us", "step_tokens_us"]
def part_medians(kind):
    got = {}
    for r in range(1, rounds + 1):
        for row in load(f"{kind}-{r}"):
            if "step_fill_us" in row:
                got.setdefault(row["batch"], []).append([row[p] for p in parts])
    return {b: [statistics.median(v[i] for v in rows) for i in range(len(parts))] for b, rows in got.items()}
print()
print("| batch | run | mask fill (µs) | launch (µs) | wait (µs) | grammar accept (µs) | tokens (µs) | host step (µs) |")
print("|---|---|---|---|---|---|---|---|")
for kind in ("plain", "schema"):
    for b, v in sorted(part_medians(kind).items()):
        print(f"| {b} | {kind} | " + " | ".join(f"{x:.1f}" for x in v) + f" | {sum(v):.1f} |")
PY
# The masks alone, per step (fill on the host, the copy and kernel on the device, and the former
# libtorch apply beside): scripts/bench/mask_bench.sh's table, with this model's tokenizer.
if [ -x "$build/tools/qwenvl-mask-bench" ]; then
  stamp "mask bench"
  echo
  OMP_NUM_THREADS=$OMP_NUM_THREADS "$build/tools/qwenvl-mask-bench" "$model" --device "$device" --batches "$batches" \
    2> "$OUT/mask-bench.log" || { tail -5 "$OUT/mask-bench.log"; status=1; }
fi
stamp "done (status $status)"
exit $status
