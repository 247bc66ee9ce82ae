#!/usr/bin/env bash
# llama.cpp beside qwenvl on the same weights (issue 18 item 1), on the GPU machine, in one device
# call (repository root; .device carried with llama.cpp's source tarball, see below): builds
# llama-server with CUDA for sm_90 from the pinned llama.cpp (scripts/llama/env.sh; the same source
# scripts/llama/serve_fixture.sh builds on the CPU), writes the random-weight model directories as
# caption_bench.sh does, converts each to GGUF (language model and vision projector, OUTTYPE), then
# per shape serves it with 64 slots and measures the caption workload of docs/BENCHMARK-METHOD.md:
# the same random 448x448 frame and "Describe this image.", exactly 32 new tokens (n_predict and
# ignore_eos), batch-1 latency from the server's own timings, frames/s with 8, 32 and 64 requests
# at once. Steps already done on a warm machine (build, models, GGUF) are skipped.
#   scripts/bench/llama_cpp_bench.sh [SHAPES (default "3b 7b")]
# As issue 18 asks: first PREPARE_ONLY=1 scripts/bench/llama_cpp_bench.sh (build, write, convert: one
# call), then scripts/bench/llama_cpp_bench.sh 3b and ... 7b on the same warm machine.
# Carry: .device/llama.cpp-<version>-src.tar.gz (scripts/llama/fetch.sh writes it; 9.5 MB) and
# .device/bench-tok (tokenizer files). CPU check: CPU=1 MODEL_DIR=DIR (any Qwen2.5-VL directory).
# Environment: OUTTYPE (bf16), PARALLEL (8,32,64), TOKENS (32), JOBS (nproc).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source scripts/llama/env.sh
source scripts/llama/server.sh
OUT=${OUT:-/tmp/qwenvl-llama-bench-out}
mkdir -p "$OUT"
shapes=${1:-"3b 7b"}
outtype=${OUTTYPE:-bf16} parallel=${PARALLEL:-8,32,64} tokens=${TOKENS:-32}
max_parallel=$(echo "$parallel" | tr , '\n' | sort -n | tail -1)
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

if [ "${CPU:-0}" = 1 ]; then
  build_flags=() gpu_flags=(-ngl 0)
  models=$(dirname "${MODEL_DIR:?CPU=1 needs MODEL_DIR}") shapes=$(basename "$MODEL_DIR")
else
  export QWENVL_LLAMA_CACHE=${QWENVL_LLAMA_CACHE:-/tmp/qwenvl-llama}
  source scripts/llama/env.sh
  build_flags=(--cuda --src "$root/.device/$(basename "$llama_src_tarball")")
  gpu_flags=(-ngl 999 -fa on)
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1; } > "$OUT/device.txt" 2>&1
  source scripts/device/build_env.sh
  models=$bench_models
fi
# Each model is written (GPU machine) and converted while llama-server builds.
convert_one() {  # SHAPE
  local gguf=$llama_cache/gguf-bench/$1
  [ -f "$gguf/mmproj-$outtype.gguf" ] && return 0
  stamp "$1: convert to GGUF ($outtype)"
  PYTHON=${PYTHON:-python3} scripts/llama/convert.sh "$models/$1" "$gguf" "$outtype" && stamp "$1: converted"
}
(
  for shape in $shapes; do
    if [ "${CPU:-0}" != 1 ]; then stamp "$shape: write"; write_bench_model "$shape" || exit 1; fi
    convert_one "$shape" || exit 1
  done
) > "$OUT/models.log" 2>&1 &
writer_pid=$!
python3 --version >> "$OUT/device.txt"; cat "$OUT/device.txt"

stamp "build llama-server (${build_flags[*]:-CPU})"
server_bin=$(scripts/llama/build.sh "${build_flags[@]}" --jobs "${JOBS:-$(nproc)}" 2> "$OUT/build.log") \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -30; echo "llama_cpp_bench: build failed"; exit 1; }
stamp "$(grep '^build:' "$OUT/build.log")"
wait "$writer_pid" || { tail -5 "$OUT/models.log"; echo "llama_cpp_bench: model writing or conversion failed"; exit 1; }
cat "$OUT/models.log"

# The benchmark's frame: transformers_caption.py's random 448x448 RGB (seed 1234), as a PNG.
frame=$OUT/frame-448.png
"${PYTHON:-python3}" - "$frame" <<'PY' || { echo "llama_cpp_bench: could not write the frame (numpy, PIL)"; exit 1; }
import sys, numpy as np
from PIL import Image
Image.fromarray(np.random.default_rng(1234).integers(0, 256, size=(448, 448, 3), dtype=np.uint8), "RGB").save(sys.argv[1])
PY

[ "${PREPARE_ONLY:-0}" = 1 ] && { stamp "prepared (PREPARE_ONLY=1: no measurement)"; exit 0; }

for shape in $shapes; do
  gguf=$llama_cache/gguf-bench/$shape
  [ -f "$gguf/mmproj-$outtype.gguf" ] || { echo "llama_cpp_bench: no GGUF for $shape"; continue; }
  # One slot per request at the largest concurrency, the KV cache shared by them (a request is about
  # 256 image + 20 text + 32 new tokens).
  llama_server_start "$OUT/server-$shape.log" "$server_bin" -m "$gguf/model-$outtype.gguf" \
    --mmproj "$gguf/mmproj-$outtype.gguf" -np "$max_parallel" -kvu -c $(( max_parallel * 512 )) "${gpu_flags[@]}" \
    || { echo "llama_cpp_bench: $shape server did not start"; continue; }
  port=$llama_port
  stamp "$shape: llama-server up ($max_parallel slots)"
  python3 scripts/llama/chat_client.py bench --port "$port" --image "$frame" --tokens "$tokens" \
    --parallel "$parallel" --json "$OUT/llama-$shape.json" | tee "$OUT/llama-$shape.md"
  kill $llama_server_pid; wait $llama_server_pid 2>/dev/null
  stamp "$shape: done"
done
echo "device: $(head -1 "$OUT/device.txt"); $(date -u '+%Y-%m-%d %H:%M UTC'); command: scripts/bench/llama_cpp_bench.sh $*; llama.cpp from llama-cpp-python $llama_pkg_version, $outtype"
