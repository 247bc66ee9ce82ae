#!/usr/bin/env bash
# Issue 18 items 2 and 3 in one device call per model (repository root, .device carried): builds
# qwenvl-bench and qwenvl-kernel-bench (build-bench-dev, as caption_bench.sh does) while the
# random-weight model of SHAPE is written (write_random_model.py), then, alone on the GPU:
#   1. the copy bandwidth (qwenvl-kernel-bench --sections copy: 2 GiB, best of 20);
#   2. the one-batch table at batch 1 and ONE_BATCH (qwenvl-bench --batches, median of 3);
#   3. batch 1 with --phases 1 (vision and prefill time), and the batch-1 floor from 1-3
#      (batch1_floor.py: latency / floor, the decode step's achieved bandwidth);
#   4. the saturated mode, without time_phases (its frames/s are the figure): IN_FLIGHT requests
#      kept in flight, WARMUP_S s of warm-up, then a DURATION_S s window (qwenvl-bench --in-flight);
#   5. if the budget allows, the first IN_FLIGHT again with --phases 1 for a shorter window: the
#      phase split of the steady state (synchronised, so slower; not the frames/s to report).
# About 7 minutes for 7b with the defaults.
#   scripts/bench/saturated_bench.sh [SHAPE (default 7b)] [BUDGET_S (default 470)]
# Environment: IN_FLIGHT (64,128), DURATION_S (30), WARMUP_S (5), ONE_BATCH (64), PHASE_DURATION_S (10);
# PREFILL_TOKENS=0,2048: step 4 once per value of EngineOptions::prefill_tokens_per_step (0: each
# admission prefilled on its own), side by side in one call; ONE_BATCH=0 skips steps 2 and 3;
# ENCODE_GROUPS=1,8: with a budget above 0, step 4 once per value of EngineOptions::encode_group too
# (unset: the engine's default); PHASE_PREFILL_TOKENS: the budget of step 5 (default: the largest of
# PREFILL_TOKENS, else unset).
# To try the tools on the CPU (figures mean nothing there), an existing build and model directory:
#   BUILD=build MODEL_DIR=DIR DEVICE=cpu IN_FLIGHT=4 DURATION_S=5 WARMUP_S=2 ONE_BATCH=4 \
#     scripts/bench/saturated_bench.sh tiny
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-saturated-out}
mkdir -p "$OUT"
rm -f "$OUT"/*.md "$OUT"/*.json  # an earlier run's tables must not be printed as this one's
shape=${1:-7b}
budget=${2:-470}
device=${DEVICE:-cuda}
in_flight=${IN_FLIGHT:-64,128}
duration=${DURATION_S:-30}
warmup=${WARMUP_S:-5}
one_batch=${ONE_BATCH:-64}
phase_duration=${PHASE_DURATION_S:-10}
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
left() { local l=$(( budget - $(elapsed) )); echo $(( l > 1 ? l : 1 )); }  # never 0: timeout 0 means no limit
stamp() { echo "[$(elapsed) s] $*"; }

if [ -z "${BUILD:-}" ]; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1; date -u; } \
    > "$OUT/device.txt" 2>&1
  source scripts/device/build_env.sh
  build=build-bench-dev
  model=$bench_models/$shape
  write_bench_model "$shape" > "$OUT/models.log" 2>&1 &
  writer_pid=$!
  stamp "configure + build"
  configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
  ninja -C "$build" -j "$(nproc)" tools/qwenvl-bench tools/qwenvl-kernel-bench > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "saturated_bench: build failed"; exit 1; }
  stamp "built"
  wait $writer_pid || { echo "saturated_bench: model writing failed:"; tail -5 "$OUT/models.log"; exit 1; }
  stamp "model written"
else
  build=$BUILD
  model=${MODEL_DIR:?MODEL_DIR must name a model directory when BUILD is set}
  { echo "$device (BUILD=$build, on this machine)"; date -u; } > "$OUT/device.txt"
fi
cat "$OUT/device.txt"
bench=$build/tools/qwenvl-bench
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

if [ "$device" = cuda ]; then  # the floor's bandwidth: a GPU's only
  stamp "copy bandwidth"
  "$build/tools/qwenvl-kernel-bench" --sections copy --runs 20 > "$OUT/copy.md" 2> "$OUT/copy.log" \
    || { cat "$OUT/copy.log"; echo "saturated_bench: copy bandwidth failed"; exit 1; }
  grep "best" "$OUT/copy.md"
fi

prefill_tokens=${PREFILL_TOKENS:-}
if [ "$one_batch" != 0 ]; then
stamp "one batch: 1 and $one_batch"
timeout "$(left)" "$bench" "$model" --device "$device" --batches "1,$one_batch" --runs 3 --json "$OUT/batch.json" \
  > "$OUT/batch.md" 2> "$OUT/batch.log" || { tail -5 "$OUT/batch.log"; echo "saturated_bench: one-batch run failed"; exit 1; }
stamp "batch 1 with phases"
timeout "$(left)" "$bench" "$model" --device "$device" --batches 1 --runs 3 --phases 1 --json "$OUT/batch1-phases.json" \
  > "$OUT/batch1-phases.md" 2> "$OUT/batch1-phases.log" || { tail -5 "$OUT/batch1-phases.log"; echo "saturated_bench: phase run failed"; exit 1; }
if [ "$device" = cuda ]; then
  python3 scripts/bench/batch1_floor.py "$model" --label "$shape" --copy-from "$OUT/copy.md" \
    --ours-json "$OUT/batch.json" --phases-json "$OUT/batch1-phases.json" > "$OUT/floor.md" || exit 1
fi
fi

stamp "saturated: $in_flight in flight, ${warmup} s + ${duration} s each"
if [ -z "$prefill_tokens" ]; then
  timeout "$(left)" "$bench" "$model" --device "$device" --in-flight "$in_flight" --duration-s "$duration" \
    --warmup-s "$warmup" --json "$OUT/saturated.json" > "$OUT/saturated.md" 2> "$OUT/saturated.log" \
    || { tail -5 "$OUT/saturated.log"; echo "saturated_bench: saturated run failed"; }
else
  : > "$OUT/saturated.md"
  for tokens in ${prefill_tokens//,/ }; do
    groups=${ENCODE_GROUPS:-default}
    [ "$tokens" = 0 ] && groups=default  # no mixed steps: nothing to group
    for group in ${groups//,/ }; do
      label="prefill_tokens_per_step $tokens" name=pt$tokens group_args=()
      if [ "$group" != default ]; then
        label+=", encode_group $group" name+=-g$group group_args=(--encode-group "$group")
      fi
      stamp "saturated, $label"
      { echo; echo "$label:"; } >> "$OUT/saturated.md"
      timeout "$(left)" "$bench" "$model" --device "$device" --in-flight "$in_flight" --duration-s "$duration" \
        --warmup-s "$warmup" --prefill-tokens-per-step "$tokens" "${group_args[@]}" --json "$OUT/saturated-$name.json" \
        >> "$OUT/saturated.md" 2> "$OUT/saturated-$name.log" \
        || { tail -5 "$OUT/saturated-$name.log"; echo "saturated_bench: saturated run ($label) failed"; }
    done
  done
fi

first=${in_flight%%,*}
phase_prefill=${PHASE_PREFILL_TOKENS:-}
if [ -z "$phase_prefill" ] && [ -n "$prefill_tokens" ]; then
  phase_prefill=$(tr ',' '\n' <<<"$prefill_tokens" | sort -n | tail -1)
fi
phase_args=()
[ -n "$phase_prefill" ] && phase_args=(--prefill-tokens-per-step "$phase_prefill")
need=$(( warmup + phase_duration + 60 ))  # the engine's start and the drain
if [ "$(left)" -ge "$need" ]; then
  stamp "saturated phase split: $first in flight, ${phase_duration} s${phase_prefill:+, prefill_tokens_per_step $phase_prefill}"
  timeout "$(left)" "$bench" "$model" --device "$device" --in-flight "$first" --duration-s "$phase_duration" \
    --warmup-s "$warmup" --phases 1 "${phase_args[@]}" > "$OUT/saturated-phases.md" 2> "$OUT/saturated-phases.log" \
    || { tail -5 "$OUT/saturated-phases.log"; echo "saturated_bench: phase split failed"; }
else
  stamp "skip the saturated phase split: $(left) s left"
fi
stamp "done"

echo
echo "device: $(head -1 "$OUT/device.txt"); command: scripts/bench/saturated_bench.sh $*"
echo "in flight $in_flight, warm-up ${warmup} s, window ${duration} s"
for part in batch floor saturated saturated-phases; do
  [ -f "$OUT/$part.md" ] && { echo; cat "$OUT/$part.md"; }
done
exit 0
