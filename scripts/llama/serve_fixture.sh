#!/usr/bin/env bash
# llama.cpp's llama-server on a Qwen2.5-VL model directory, end to end on the CPU (issue 16 item 5):
# fetch the pinned llama.cpp, build llama-server, convert the model and its vision projector to GGUF,
# serve it with SLOTS parallel slots, ask it about a PNG (non-streamed and streamed), and, where a
# qwenvl build has the remote engine, point qwenvl-cli --remote and the qwenvl element's remote-url
# at it (every asked frame must be answered). Prints what it did with the time of each step.
#   scripts/llama/serve_fixture.sh [MODEL_DIR (default: the tiny-a fixture)]
# Environment: BUILD (the qwenvl build: its fixtures and its tools; default build), SLOTS (4),
# FRAMES (the element's frames, 8), RECORD_DIR (write the raw responses there as test fixtures),
# OUTTYPE (f32), PYTHON (the converter's python; default .venv/bin/python).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/env.sh"
build=${BUILD:-$root/build}
fixtures=${FIXTURES:-$build/fixtures}
model=${1:-$fixtures/models/tiny-a}
slots=${SLOTS:-4} frames=${FRAMES:-8} outtype=${OUTTYPE:-f32}
image=$fixtures/media/sample.png
t_start=$(date +%s)
step() { echo "[$(( $(date +%s) - t_start )) s] $*"; }

step "llama.cpp from llama-cpp-python $llama_pkg_version (sdist on PyPI), cache $llama_cache"
server_bin=$(nice -n "${NICE:-0}" "$here/build.sh" 2> >(grep -E "^build:|error|Error" >&2))
step "built $server_bin"

gguf=$llama_cache/gguf/$(basename "$model")-$( (cat "$model/config.json"; stat -c %s "$model"/*.safetensors) | sha256sum | cut -c1-12)
if [ ! -f "$gguf/mmproj-$outtype.gguf" ]; then
  "$here/convert.sh" "$model" "$gguf" "$outtype"
fi
step "converted $model -> $gguf/model-$outtype.gguf ($(du -h "$gguf/model-$outtype.gguf" | cut -f1)), mmproj-$outtype.gguf ($(du -h "$gguf/mmproj-$outtype.gguf" | cut -f1))"

source "$here/server.sh"
log=$(mktemp)
trap 'kill $llama_server_pid 2>/dev/null || true; wait $llama_server_pid 2>/dev/null || true; rm -f "$log"' EXIT
llama_server_start "$log" "$server_bin" -m "$gguf/model-$outtype.gguf" --mmproj "$gguf/mmproj-$outtype.gguf" \
  -np "$slots" -c $(( slots * 2048 )) -t "$(nproc)" || exit 1
port=$llama_port
step "llama-server on 127.0.0.1:$port, $slots slots"

t0=$(date +%s.%N)
python3 "$here/chat_client.py" record --port "$port" --image "$image" --tokens 16 ${RECORD_DIR:+--record-dir "$RECORD_DIR"}
step "answered ($(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$t0") s for both)"

# A stop string, live: llama-server says which one ended an answer only under --verbose (its
# __verbose.stopping_word; the OpenAI fields say "stop" alone). A second server with --verbose, a
# stop string cut from the answer's middle, the events recorded; qwenvl-cli --remote must name it.
vlog=$(mktemp)
main_pid=$llama_server_pid
llama_server_start "$vlog" "$server_bin" -m "$gguf/model-$outtype.gguf" --mmproj "$gguf/mmproj-$outtype.gguf" \
  -np 1 -c 2048 -t "$(nproc)" --verbose || exit 1
verbose_pid=$llama_server_pid verbose_port=$llama_port
llama_server_pid=$main_pid
stop_line=$(python3 "$here/chat_client.py" record-stop --port "$verbose_port" --image "$image" --tokens 16 \
  ${RECORD_DIR:+--record-dir "$RECORD_DIR"}) || { echo "$stop_line"; kill $verbose_pid; exit 1; }
echo "$stop_line"
step "llama-server --verbose on 127.0.0.1:$verbose_port: the stop string is named"
if [ -x "$build/tools/qwenvl-cli" ] && [ -f "$build/remote/libqwenvl-remote.so" ]; then
  word=$(echo "$stop_line" | sed -n 's/^stop_string_json: //p' | python3 -c 'import json, sys; print(json.load(sys.stdin), end="")')
  answer=$("$build/tools/qwenvl-cli" --json --remote "http://127.0.0.1:$verbose_port/v1" -i "$image" \
    -p "Describe this image." -n 16 --temperature 0 --stop "$word") || { kill $verbose_pid; exit 1; }
  echo "$answer"
  python3 -c "import json, sys; a = json.loads(sys.argv[1]); sys.exit(0 if a['finish_reason'] == 'stop_string' and a['stop_string'] == sys.argv[2] else 1)" \
    "$answer" "$word" || { echo "serve_fixture: qwenvl-cli --remote did not name the stop string '$word'"; kill $verbose_pid; exit 1; }
  step "qwenvl-cli --remote --stop: finish_reason stop_string, stop_string '$word'"
fi
kill $verbose_pid; wait $verbose_pid 2>/dev/null || true; rm -f "$vlog"

if [ -x "$build/tools/qwenvl-cli" ] && [ -f "$build/remote/libqwenvl-remote.so" ]; then
  url=http://127.0.0.1:$port/v1
  "$build/tools/qwenvl-cli" --remote "$url" -i "$image" -p "Describe this image." -n 16
  step "qwenvl-cli --remote $url answered"
  source_caps="videotestsrc num-buffers=$frames pattern=ball ! video/x-raw,format=RGB,width=448,height=448"
  out=$(GST_PLUGIN_PATH=$build/gst-plugin QWENVL_REMOTE_LIBRARY=$build/remote/libqwenvl-remote.so \
    "$build/tools/qwenvl-launch" "$source_caps ! qwenvl remote-url=$url remote-max-inflight=$slots mode=sync interval=0 max-new-tokens=8 temperature=0 ! fakesink" 2>&1) \
    || { echo "$out" | tail -20; echo "serve_fixture: the element's pipeline failed"; exit 1; }
  answered=$(echo "$out" | grep -c '"text"' || true)
  step "element remote-url=$url: $answered answers for $frames frames"
  [ "$answered" = "$frames" ] || { echo "$out" | tail -20; echo "serve_fixture: not every asked frame was answered"; exit 1; }
else
  step "skipped the element: $build has no remote engine (build/remote/libqwenvl-remote.so; issue 16 item 3)"
fi
step "done"
