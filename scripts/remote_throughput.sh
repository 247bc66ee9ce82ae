#!/usr/bin/env bash
# Frames per second the qwenvl element answers through the remote engine against qwenvl-server on
# loopback, beside the same pipeline on the local engine in process: a live videotestsrc of FRAMES
# frames at FPS (WIDTHxHEIGHT RGB, faster than the engine answers) into qwenvl in async mode with
# MAX_PENDING requests in flight (skip-while-busy: frames that come while all are busy pass unasked),
# NEW_TOKENS new tokens a question, drained at EOS. Prints one line per engine: answered, seconds, answers per second.
#   scripts/remote_throughput.sh [MODEL_DIR]   (default: the tiny-a fixture; BUILD=build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
model=${1:-$build/fixtures/models/tiny-a}
frames=${FRAMES:-600} fps=${FPS:-60} width=${WIDTH:-640} height=${HEIGHT:-480}
pending=${MAX_PENDING:-16} tokens=${NEW_TOKENS:-16}
export GST_PLUGIN_PATH=$build/gst-plugin QWENVL_REMOTE_LIBRARY=$build/remote/libqwenvl-remote.so
out=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$out"' EXIT
"$build/tools/server/qwenvl-server" --model "$model" --port 0 --max-batch "$pending" >"$out/server.out" 2>"$out/server.err" &
server=$!
for _ in $(seq 100); do grep -q serving "$out/server.out" 2>/dev/null && break; sleep 0.1; done
url="$(awk '{print $NF}' "$out/server.out")/v1"
run() {  # LABEL ENGINE_PROPERTIES
  local source="videotestsrc is-live=true num-buffers=$frames pattern=ball ! video/x-raw,format=RGB,width=$width,height=$height,framerate=$fps/1"
  local element="qwenvl $2 mode=async max-pending=$pending temperature=0 max-new-tokens=$tokens interval=0"
  local start end answered
  start=$(date +%s.%N)
  answered=$("$build/tools/qwenvl-launch" "$source ! $element ! fakesink" 2>/dev/null | grep -c '"text"' || true)
  end=$(date +%s.%N)
  python3 -c "import sys; a, s = int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3]); print(f'{sys.argv[1]}: {a} answers in {s:.1f} s, {a / s:.1f} answers/s')" \
    "$1" "$answered" "$start" "$end"
}
echo "$frames frames ${width}x${height} RGB at $fps fps, $pending in flight, $tokens new tokens, $(basename "$model"), $(getconf _NPROCESSORS_ONLN) CPU cores"
run "remote png ($url)" "remote-url=$url remote-max-inflight=$pending"
run "remote jpeg q90" "remote-url=$url remote-max-inflight=$pending remote-image-format=jpeg"
kill $server; wait $server 2>/dev/null || true
run "local engine" "model=$model"
