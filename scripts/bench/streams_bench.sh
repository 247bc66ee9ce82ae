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
#   scripts/bench/streams_bench.sh [SHAPE, default 7b]
# Environment: STREAMS ("16 64"), SECONDS_TO_RUN (40), WARMUP_S (10), SATURATED (1: run the
# qwenvl-bench side; 0: skip it).
# To try it on the CPU (figures mean nothing there): BUILD=build MODEL_DIR=DIR DEVICE=cpu STREAMS=2
#   SECONDS_TO_RUN=10 WARMUP_S=2 scripts/bench/streams_bench.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-streams-out}
mkdir -p "$OUT"
rm -f "$OUT"/answers-*.jsonl "$OUT"/launch-*.log  # an earlier run's answers must not be counted as this one's
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
  if [ ! -f "$build/build.ninja" ] || ! grep -q "gstreamer-video-1.0 found: YES" "$build/meson-logs/meson-log.txt"; then
    rm -rf "$build"
    configure_build "$build" "$OUT/configure.log" -Dtests=false || exit 1
  fi
  ninja -C "$build" -j "$(nproc)" gst-plugin/libgstqwenvl.so tools/qwenvl-launch tools/qwenvl-bench \
    engine/libqwenvl-engine.so > "$OUT/build.log" 2>&1 \
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
if [ "${SATURATED:-1}" = 1 ]; then
  in_flight=$(echo $streams_list | tr ' ' ',')
  stamp "engine alone: --in-flight $in_flight"
  "$build/tools/qwenvl-bench" "$model" --device "$device" --in-flight "$in_flight" --duration-s $(( seconds - warmup )) \
    --warmup-s "$warmup" --json "$OUT/saturated.json" > "$OUT/saturated.md" 2> "$OUT/saturated.log" \
    || { tail -5 "$OUT/saturated.log"; status=1; }
fi

patterns=(smpte ball pinwheel spokes gradient checkers-8 circular bar colors smpte75 zone-plate chroma-zone-plate)
for n in $streams_list; do
  pipeline=""
  for (( i = 0; i < n; i++ )); do
    pipeline+="videotestsrc is-live=true pattern=${patterns[$(( i % ${#patterns[@]} ))]} num-buffers=$(( seconds * 30 )) \
      ! video/x-raw,format=RGB,width=448,height=448,framerate=30/1 \
      ! qwenvl model=$model device=$device engine-id=streams-$n max-batch=$n stream-id=cam$i interval=0 mode=async \
        drop-policy=skip-while-busy max-new-tokens=32 ignore-eos=true temperature=0 ! fakesink sync=true "
  done
  stamp "$n streams"
  timeout $(( seconds + 180 )) "$build/tools/qwenvl-launch" --stats "$pipeline" > "$OUT/answers-$n.jsonl" 2> "$OUT/launch-$n.log"
  rc=$?
  stamp "$n streams: qwenvl-launch exit $rc"
  [ $rc = 0 ] || { tail -5 "$OUT/launch-$n.log" | cut -c1-400; status=1; }
done

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
print(f"\nqwenvl elements sharing one {shape} engine on {device}: N live 448x448 RGB streams at 30 fps, interval=0 "
      f"mode=async drop-policy=skip-while-busy max-batch=N, 32 tokens (ignore-eos), {seconds:.0f} s of video, steady "
      f"window after {warmup:.0f} s ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
print("| streams | answers/s (steady) | engine alone, N in flight: frames/s | ratio | latency p50 ms | latency p99 ms | "
      "engine alone p50 / p99 ms | frames | answered | dropped | failed + cancelled | frames accounted | tokens per answer |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for n in map(int, streams_list):
    path = out / f"answers-{n}.jsonl"
    answers = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
    # The answer's time on the pipeline clock: its frame's time plus submit-to-answer latency.
    steady = [a for a in answers if warmup <= (a["pts"] + a["latency"]) / 1e9 <= seconds]
    rate = len(steady) / (seconds - warmup)
    lat = [a["latency"] / 1e6 for a in steady]
    stats = {}
    log = out / f"launch-{n}.log"
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
    sat = saturated.get(n)
    sat_fps = sat["frames_per_s"] if sat else float("nan")
    sat_lat = f"{sat['latency_p50_ms']:.0f} / {sat['latency_p99_ms']:.0f}" if sat and "latency_p50_ms" in sat else "-"
    print(f"| {n} | {rate:.2f} | {sat_fps:.2f} | {rate / sat_fps if sat else float('nan'):.3f} | {pct(lat, .5):.0f} | "
          f"{pct(lat, .99):.0f} | {sat_lat} | {frames * n} | {total['answered']} | {total['dropped']} | "
          f"{total['failed'] + total['cancelled']} | {accounted} | {tokens:.1f} |")
PY
exit $status
