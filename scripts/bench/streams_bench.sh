#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): issue 18 item 5, many live streams into one
# engine. For each N of STREAMS: N live videotestsrc streams (448x448 RGB at 30 fps, the caption
# workload's frame size) into N qwenvl elements sharing one engine of SHAPE on cuda (engine-id,
# max-batch=N), each asking about every frame it can (interval=0, mode=async,
# drop-policy=skip-while-busy: one request per stream in flight, so N in flight), greedy, exactly 32
# new tokens (ignore-eos: random weights end early otherwise), for SECONDS_TO_RUN seconds of video.
# Beside it, in the same call, the engine alone under the same concurrency: qwenvl-bench
# --in-flight N (N requests kept in flight, the same 448x448 frame size and 32 tokens; its
# steady-state frames/s). Prints per N: answers/s in the steady window (answers whose frame time +
# latency falls after WARMUP_S), their ratio to the engine's saturated frames/s, latency p50/p99,
# and the accounting of every frame (interval=0 makes every frame due, so each of an element's
# frames must end answered, dropped or failed/cancelled with a reason: their sum equals its frames,
# from qwenvl-launch --stats).
# LLAMA=1 adds, per N, the same N streams with llama-server as the elements' remote backend
# (remote-url, one engine shared by engine-id, remote-max-inflight=N): llama-server serves SHAPE's
# GGUF with N slots and a unified KV cache on the GPU, as llama_cpp_bench.sh does; its rows beside
# ours, with the ratio of answers/s. It takes llama_cpp_bench.sh's build and GGUF on the same warm
# machine: run `PREPARE_ONLY=1 scripts/bench/llama_cpp_bench.sh SHAPE` (about 8 minutes) first.
#   scripts/bench/streams_bench.sh [SHAPE, default 7b]
# Environment: STREAMS ("16 64"), SECONDS_TO_RUN (40), WARMUP_S (10), SATURATED (1: run the
# qwenvl-bench side; 0: skip it), QWENVL (1: the local engine's streams; 0: skip them), LLAMA (0),
# LLAMA_SERVER_BIN and LLAMA_GGUF_DIR (model-*.gguf and mmproj-*.gguf; default: llama_cpp_bench.sh's).
# To try it on the CPU (figures mean nothing there): BUILD=build MODEL_DIR=DIR DEVICE=cpu STREAMS=2
#   SECONDS_TO_RUN=10 WARMUP_S=2 scripts/bench/streams_bench.sh (with LLAMA=1, LLAMA_SERVER_BIN and
#   LLAMA_GGUF_DIR of scripts/llama/serve_fixture.sh's build and conversion of that directory)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-streams-out}
mkdir -p "$OUT"
rm -f "$OUT"/answers-*.jsonl "$OUT"/launch-*.log "$OUT"/llama-server-*.log  # an earlier run's must not count
[ "${SATURATED:-1}" = 1 ] && rm -f "$OUT/saturated.json"
shape=${1:-7b}
streams_list=${STREAMS:-"16 64"}
seconds=${SECONDS_TO_RUN:-40}
warmup=${WARMUP_S:-10}
device=${DEVICE:-cuda}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

if [ -z "${BUILD:-}" ]; then
  source scripts/device/build_env.sh
  gstreamer_pkgconfig_stubs
  build=build-element-dev
  model=$bench_models/$shape
  write_bench_model "$shape" > "$OUT/models.log" 2>&1 &
  writer_pid=$!
  if [ ! -f "$build/build.ninja" ] || ! grep -q "gstreamer-video-1.0 found: YES" "$build/meson-logs/meson-log.txt" ||
    { [ "${LLAMA:-0}" = 1 ] && ! grep -q "libqwenvl-remote.so:" "$build/build.ninja"; }; then
    rm -rf "$build"
    configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
  fi
  targets=(gst-plugin/libgstqwenvl.so tools/qwenvl-launch tools/qwenvl-bench engine/libqwenvl-engine.so)
  [ "${LLAMA:-0}" = 1 ] && targets+=(remote/libqwenvl-remote.so)
  ninja -C "$build" -j "$(nproc)" "${targets[@]}" > "$OUT/build.log" 2>&1 \
    || { grep -E "error|FAILED" "$OUT/build.log" | head -40; echo "streams_bench: build failed"; exit 1; }
  stamp "built"
  wait $writer_pid || { echo "streams_bench: model writing failed"; tail -5 "$OUT/models.log"; exit 1; }
  stamp "model ready"
else
  build=$BUILD
  model=${MODEL_DIR:?MODEL_DIR must name a model directory when BUILD is set}
fi
export GST_PLUGIN_PATH=$root/$build/gst-plugin OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

status=0
if [ "${SATURATED:-1}" = 1 ] && [ "${QWENVL:-1}" = 1 ]; then
  in_flight=$(echo $streams_list | tr ' ' ',')
  stamp "engine alone: --in-flight $in_flight"
  "$build/tools/qwenvl-bench" "$model" --device "$device" --in-flight "$in_flight" --duration-s $(( seconds - warmup )) \
    --warmup-s "$warmup" --json "$OUT/saturated.json" > "$OUT/saturated.md" 2> "$OUT/saturated.log" \
    || { tail -5 "$OUT/saturated.log"; status=1; }
fi

patterns=(smpte ball pinwheel spokes gradient checkers-8 circular bar colors smpte75 zone-plate chroma-zone-plate)
# run_streams N NAME ENGINE_PROPERTIES: N live streams into qwenvl elements with those engine
# properties; answers to answers-NAME.jsonl, qwenvl-launch's stats to launch-NAME.log.
run_streams() {
  local n=$1 name=$2 engine=$3 pipeline="" i rc
  for (( i = 0; i < n; i++ )); do
    pipeline+="videotestsrc is-live=true pattern=${patterns[$(( i % ${#patterns[@]} ))]} num-buffers=$(( seconds * 30 )) \
      ! video/x-raw,format=RGB,width=448,height=448,framerate=30/1 \
      ! qwenvl $engine stream-id=cam$i interval=0 mode=async \
        drop-policy=skip-while-busy max-new-tokens=32 ignore-eos=true temperature=0 ! fakesink sync=true "
  done
  stamp "$name: $n streams"
  timeout $(( seconds + 180 )) "$build/tools/qwenvl-launch" --stats "$pipeline" > "$OUT/answers-$name.jsonl" 2> "$OUT/launch-$name.log"
  rc=$?
  stamp "$name: qwenvl-launch exit $rc"
  [ $rc = 0 ] || { tail -5 "$OUT/launch-$name.log" | cut -c1-400; status=1; }
}
if [ "${QWENVL:-1}" = 1 ]; then
  for n in $streams_list; do
    run_streams "$n" "$n" "model=$model device=$device engine-id=streams-$n max-batch=$n"
  done
fi

if [ "${LLAMA:-0}" = 1 ]; then
  source scripts/llama/env.sh
  source scripts/llama/server.sh
  server_bin=${LLAMA_SERVER_BIN:-$llama_cache/build-cuda-sm90/bin/llama-server}
  gguf_dir=${LLAMA_GGUF_DIR:-$llama_cache/gguf-bench/$shape}
  gguf=$(ls "$gguf_dir"/model-*.gguf 2>/dev/null | head -1) mmproj=$(ls "$gguf_dir"/mmproj-*.gguf 2>/dev/null | head -1)
  if [ ! -x "$server_bin" ] || [ -z "$gguf" ] || [ -z "$mmproj" ]; then
    echo "streams_bench: LLAMA=1 needs llama-server ($server_bin) and $shape's GGUF in $gguf_dir:" \
      "run PREPARE_ONLY=1 scripts/bench/llama_cpp_bench.sh $shape on this machine first"
    status=1
  else
    gpu_flags=(-ngl 999 -fa on)
    [ "$device" = cpu ] && gpu_flags=(-ngl 0 -t "$(nproc)")
    for n in $streams_list; do
      # One slot per stream, the KV cache shared by them (a request is about 256 image + 20 text + 32
      # new tokens), as llama_cpp_bench.sh serves it.
      if llama_server_start "$OUT/llama-server-$n.log" "$server_bin" -m "$gguf" --mmproj "$mmproj" -np "$n" -kvu \
        -c $(( n * 512 )) "${gpu_flags[@]}"; then
        run_streams "$n" "llama-$n" \
          "remote-url=http://127.0.0.1:$llama_port/v1 remote-model=$shape remote-max-inflight=$n engine-id=llama-$n"
        kill "$llama_server_pid"; wait "$llama_server_pid" 2>/dev/null
      else
        echo "streams_bench: llama-server with $n slots did not start"; status=1
      fi
    done
  fi
fi

python3 - "$OUT" "$seconds" "$warmup" "$shape" "$streams_list" "$device" <<'PY'
import json, re, sys, time
from pathlib import Path
out, seconds, warmup, shape, streams_list, device = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5].split(), sys.argv[6]
def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")
saturated = {}
try:
    saturated = {int(r["in_flight"]): r for r in json.load(open(out / "saturated.json"))}
except (OSError, ValueError):
    pass
print(f"\nqwenvl elements on {device}: N live 448x448 RGB streams at 30 fps, interval=0 mode=async "
      f"drop-policy=skip-while-busy, 32 tokens (ignore-eos), {seconds:.0f} s of video, steady window after {warmup:.0f} s; "
      f"the backend: one {shape} engine (max-batch=N) or llama-server with N slots through remote-url "
      f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
print("| backend | streams | answers/s (steady) | engine alone, N in flight: frames/s | ratio | latency p50 ms | "
      "latency p99 ms | engine alone p50 / p99 ms | frames | answered | dropped | failed + cancelled | frames accounted | "
      "tokens per answer |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
rates = {}
for backend, prefix in (("qwenvl engine", ""), ("llama-server", "llama-")):
    for n in map(int, streams_list):
        path = out / f"answers-{prefix}{n}.jsonl"
        log = out / f"launch-{prefix}{n}.log"
        if not path.exists() and not log.exists():
            continue
        answers = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        # The answer's time on the pipeline clock: its frame's time plus submit-to-answer latency.
        steady = [a for a in answers if warmup <= (a["pts"] + a["latency"]) / 1e9 <= seconds]
        rate = len(steady) / (seconds - warmup)
        rates[(backend, n)] = rate
        lat = [a["latency"] / 1e6 for a in steady]
        stats = {}
        for line in (log.read_text().splitlines() if log.exists() else []):
            m = re.match(r"qwenvl-launch: stats of (\S+): (.*)", line)
            if m:
                stats[m.group(1)] = {k: int(v) for k, v in re.findall(r"([a-z0-9-]+)=\([a-z0-9]+\)(\d+)", m.group(2))}
        fields = ("answered", "dropped", "failed", "cancelled")
        total = {k: sum(v.get(k, 0) for v in stats.values()) for k in fields}
        frames = int(seconds * 30)
        balanced = sum(1 for v in stats.values() if sum(v.get(k, 0) for k in fields) == frames)
        accounted = f"{balanced}/{len(stats)} elements" + (", all" if balanced == len(stats) == n else "")
        tokens = sum(a["generated_tokens"] for a in answers) / len(answers) if answers else float("nan")
        sat = saturated.get(n) if not prefix else None
        sat_fps = f"{sat['frames_per_s']:.2f}" if sat else "-"
        ratio = f"{rate / sat['frames_per_s']:.3f}" if sat else "-"
        sat_lat = f"{sat['latency_p50_ms']:.0f} / {sat['latency_p99_ms']:.0f}" if sat and "latency_p50_ms" in sat else "-"
        print(f"| {backend} | {n} | {rate:.2f} | {sat_fps} | {ratio} | {pct(lat, .5):.0f} | {pct(lat, .99):.0f} | {sat_lat} | "
              f"{frames * n} | {total['answered']} | {total['dropped']} | {total['failed'] + total['cancelled']} | "
              f"{accounted} | {tokens:.1f} |")
for n in map(int, streams_list):
    ours, theirs = rates.get(("qwenvl engine", n)), rates.get(("llama-server", n))
    if ours is not None and theirs:
        print(f"\n{n} streams: qwenvl engine / llama-server answers/s = {ours / theirs:.2f}")
PY
exit $status
