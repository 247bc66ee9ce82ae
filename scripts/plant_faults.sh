#!/usr/bin/env bash
# Shows that the network parity tests have teeth: plants one known fault at a time in the network
# code, rebuilds, runs tests/nn's parity suite and reports whether it failed (it must), then
# restores the file. Needs a configured build with fixtures (scripts/test.sh BUILD first).
#   scripts/plant_faults.sh [BUILD_DIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"

# name | file | sed expression that plants the fault
faults=(
  "wrong mrope section (axes t/h/w permuted)|kernels/rotary.cpp|s/freqs\[int64_t(axis)\]/freqs[int64_t((axis + 1) % sections.size())]/"
  "window un-permute skipped|engine/nn/vision_tower.cpp|s/return merged.index_select(0, g.reverse_index.to(device));/return merged;/"
  "off-by-one decode position|engine/runtime/model_runner.cpp|s/step.positions\[a \* s + i\] = slot.last_position\[a\] + 1;/step.positions[a * s + i] = slot.last_position[a] + 2;/"
  "prefill attention mask not causal|engine/nn/language_model.cpp|s/batch.max_seqlen_q, scale, \/\*causal=\*\/true)/batch.max_seqlen_q, scale, \/*causal=*\/false)/"
)
status=0
for fault in "${faults[@]}"; do
  IFS='|' read -r name file expr <<<"$fault"
  cp "$file" "$file.orig"
  sed -i "$expr" "$file"
  if cmp -s "$file" "$file.orig"; then
    echo "NOT PLANTED: $name (the pattern no longer matches $file)"; status=1
  elif ! ninja -C "$build" tests/test_qwen2_5_vl >/dev/null 2>&1; then
    echo "BUILD FAILED: $name"; status=1
  elif QWENVL_FIXTURES="$build/fixtures" "$build/tests/test_qwen2_5_vl" >"/tmp/fault.log" 2>&1; then
    echo "NOT CAUGHT: $name"; status=1
  else
    failed=$(grep '^\[  FAILED  \] .*\.' /tmp/fault.log | grep -v ' ms)$' | sed 's/^\[  FAILED  \] //; s/, where.*//')
    echo "caught: $name — $(echo "$failed" | wc -l) failing tests:"
    echo "$failed" | sed 's/^/    /'

  fi
  mv "$file.orig" "$file"
  touch "$file"  # newer than the faulty build's objects, so the next build recompiles it
done
ninja -C "$build" tests/test_qwen2_5_vl >/dev/null 2>&1
exit $status
