#!/usr/bin/env bash
# Resident memory of a loaded model against its files' size: writes a ~300 MB random-weight
# Qwen2.5-VL directory (bf16, Qwen2's real vocabulary, tensor by tensor), loads it with the engine
# on the CPU in its stored dtype, answers one request, and prints the table of qwenvl-load-bench.
#   scripts/bench/load_memory.sh [BUILD_DIR] [SHAPE]     (SHAPE: bench300 (default), 3b, 7b)
# Needs a build with fixtures (scripts/test.sh BUILD_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
shape=${2:-bench300}
cd "$root"
dir=$(mktemp -d "${TMPDIR:-/tmp}/qwenvl-$shape.XXXXXX")
trap 'rm -rf "$dir"' EXIT
echo "writing a random $shape model into $dir" >&2
/usr/bin/time -f "writer peak RSS: %M KiB" .venv/bin/python scripts/bench/write_random_model.py "$dir" --shape "$shape" \
  --tokenizer-from "$build/fixtures/models/tiny-a" >&2
"$build/tools/qwenvl-load-bench" "$dir" --dtype bfloat16
