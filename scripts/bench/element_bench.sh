#!/usr/bin/env bash
# On the GPU machine (repository root, .device carried): the element on a GPU. Four live
# videotestsrc streams (640x480, 30 fps) into four qwenvl elements sharing one engine (engine-id) on
# cuda with a random-weight 7B directory at the real shape, asking about every frame they can
# (interval 0, mode async, skip-while-busy: the video never waits) for SECONDS seconds, 32 new tokens
# per answer. Prints answers/s, answer latency p50/p99 (submit to answer, from the qwenvl-result
# messages), time to first token, and the frames dropped while busy, per stream and in all.
#   scripts/bench/element_bench.sh [SHAPE, default 7b]   (env: SECONDS_TO_RUN, default 20)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/qwenvl-element-bench-out}
mkdir -p "$OUT"
shape=${1:-7b}
seconds=${SECONDS_TO_RUN:-20}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

source scripts/device/build_env.sh
gstreamer_pkgconfig_stubs
build=build-element-dev
models=$bench_models

write_bench_model "$shape" > "$OUT/element_models.log" 2>&1 &
writer_pid=$!

if [ ! -f "$build/build.ninja" ] || ! grep -q "gstreamer-video-1.0 found: YES" "$build/meson-logs/meson-log.txt"; then
  rm -rf "$build"
  configure_build "$build" "$OUT/element_configure.log" -Dtests=false || exit 1
fi
grep -iE "gstreamer|opencv" "$OUT/element_configure.log" | head -5
ninja -C "$build" -j "$(nproc)" gst-plugin/libgstqwenvl.so tools/qwenvl-launch engine/libqwenvl-engine.so > "$OUT/element_build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/element_build.log" | head -40; echo "element_bench: build failed"; exit 1; }
stamp "built"
wait $writer_pid || { echo "element_bench: model writing failed"; tail -5 "$OUT/element_models.log"; exit 1; }
stamp "model ready"

frames=$(( seconds * 30 ))
pipeline=""
patterns=(smpte ball snow pinwheel)
for i in 0 1 2 3; do
  pipeline+="videotestsrc is-live=true pattern=${patterns[$i]} num-buffers=$frames \
    ! video/x-raw,format=RGB,width=640,height=480,framerate=30/1 \
    ! qwenvl model=$models/$shape device=cuda engine-id=gpu-bench stream-id=cam$i interval=0 mode=async \
      drop-policy=skip-while-busy max-new-tokens=32 ! fakesink sync=true "
done
export GST_PLUGIN_PATH=$root/$build/gst-plugin OMP_NUM_THREADS=8
start=$(date +%s.%N)
timeout $(( seconds + 120 )) "$build/tools/qwenvl-launch" --stats "$pipeline" > "$OUT/element_answers.jsonl" 2> "$OUT/element_stderr.log"
status=$?
end=$(date +%s.%N)
stamp "pipeline exit $status"
tail -3 "$OUT/element_stderr.log" | cut -c1-400
python3 - "$OUT" "$seconds" "$start" "$end" "$shape" <<'PY'
import json, re, sys, time
from pathlib import Path
out, seconds, start, end, shape = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
answers = [json.loads(l) for l in (out / "element_answers.jsonl").read_text().splitlines() if l.strip()]
stats = {}
for line in (out / "element_stderr.log").read_text().splitlines():
    m = re.match(r"qwenvl-launch: stats of (\S+): (.*)", line)
    if m:
        stats[m.group(1)] = {k: int(v) for k, v in re.findall(r"([a-z0-9-]+)=\([a-z0-9]+\)(\d+)", m.group(2))}
def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")
print(f"\nqwenvl element on the GPU: 4 live streams 640x480@30 into qwenvl elements sharing one {shape} engine, "
      f"interval=0 mode=async drop-policy=skip-while-busy max-new-tokens=32, {seconds:.0f} s of video "
      f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
print("| stream | answers | answers/s | latency p50 ms | latency p99 ms | TTFT p50 ms | frames dropped (busy) | generated tokens |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
streams = sorted({a["stream_id"] for a in answers})
wall = seconds
for s in streams + ["all"]:
    rows = [a for a in answers if s == "all" or a["stream_id"] == s]
    lat = [a["latency"] / 1e6 for a in rows]
    ttft = [a["ttft"] / 1e6 for a in rows]
    dropped = sum(v.get("dropped", 0) for k, v in stats.items() if s == "all" or k == {a["stream_id"]: a["element"] for a in answers}.get(s))
    toks = sum(a.get("generated_tokens", 0) for a in rows)
    print(f"| {s} | {len(rows)} | {len(rows) / wall:.2f} | {pct(lat, .5):.1f} | {pct(lat, .99):.1f} | {pct(ttft, .5):.1f} | {dropped} | {toks} |")
PY
exit $status
