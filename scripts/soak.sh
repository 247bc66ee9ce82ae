#!/usr/bin/env bash
# A bounded soak (issue 15, item 6; outside CI): STREAMS live streams into as many qwenvl elements
# sharing one engine (engine-id), async mode, for DURATION_S seconds, run by qwenvl-launch --stats.
# Every frame is due (interval=0), so each must end as exactly one of answered, dropped (with a
# qwenvl-dropped reason) or failed/cancelled (with a reason): the script checks that the counts add
# up to the frames per stream and in all, and samples the resident memory of the process every
# SAMPLE_S seconds (on a CUDA device also the card's used memory, from nvidia-smi). The growth after
# warm-up (the first WARMUP_S seconds) of the anonymous resident memory (the heap: where a leak
# grows) must stay under RSS_BOUND_MB, the card's under DEVICE_BOUND_MB; the file-backed part
# (libtorch's code, the mapped weights) and the total are printed beside it, not bounded: the kernel
# drops such pages under memory pressure and faults them in again, whatever the process does.
# Prints a table (paste it into docs/RELIABILITY.md) and exits non-zero when a check fails.
# Usage: scripts/soak.sh [MODEL]
#   env: BUILD, MODEL (default tiny-a), STREAMS (8), DURATION_S (600), FPS (10), WIDTH x HEIGHT
#        (64 x 48, NV12), WARMUP_S (60), RSS_BOUND_MB (64), DEVICE_BOUND_MB (1024, CUDA only),
#        SAMPLE_S (5), REPORT_S (60: the sample series printed, one per REPORT_S),
#        DROP_POLICY (skip-while-busy), MAX_NEW_TOKENS (8), DEVICE (cpu),
#        SOAK_OUT (keep the logs and samples there instead of a temporary directory)
set -euo pipefail
source "$(dirname "$0")/../pipelines/common.sh"
STREAMS=${STREAMS:-8}
DURATION_S=${DURATION_S:-600}
FPS=${FPS:-10}
WARMUP_S=${WARMUP_S:-60}
RSS_BOUND_MB=${RSS_BOUND_MB:-64}
DEVICE_BOUND_MB=${DEVICE_BOUND_MB:-1024}
SAMPLE_S=${SAMPLE_S:-5}
REPORT_S=${REPORT_S:-60}
WIDTH=${WIDTH:-64}
HEIGHT=${HEIGHT:-48}
DROP_POLICY=${DROP_POLICY:-skip-while-busy}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-8}
DEVICE=${DEVICE:-cpu}
FRAMES=$((DURATION_S * FPS))
if [ -n "${SOAK_OUT:-}" ]; then OUT=$SOAK_OUT; mkdir -p "$OUT"; rm -f "$OUT/rss.txt" "$OUT/device.txt"; else OUT=$(mktemp -d); fi
PID=""
# Stopped early (timeout, ^C): the pipeline goes too, not left holding the device.
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2> /dev/null || true; fi
  if [ -z "${SOAK_OUT:-}" ]; then rm -rf "$OUT"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

patterns=(smpte ball snow checkers-8 circular zone-plate gamut spokes)
PIPELINE=""
for ((i = 0; i < STREAMS; i++)); do
  PIPELINE+="videotestsrc is-live=true pattern=${patterns[$((i % 8))]} num-buffers=$FRAMES \
    ! video/x-raw,format=NV12,width=$WIDTH,height=$HEIGHT,framerate=$FPS/1 \
    ! qwenvl name=s$i model=\"$MODEL\" device=$DEVICE engine-id=soak stream-id=s$i mode=async \
      drop-policy=$DROP_POLICY max-new-tokens=$MAX_NEW_TOKENS ! fakesink sync=true "
done

"$QWENVL_LAUNCH" --stats "$PIPELINE" > "$OUT/answers.jsonl" 2> "$OUT/stderr.txt" &
PID=$!
start=$(date +%s)
while kill -0 "$PID" 2> /dev/null; do  # every SAMPLE_S seconds: "seconds kB kB kB" and "seconds MiB"
  t=$(($(date +%s) - start))
  # resident kB: all, anonymous (the heap, where a leak grows), file-backed (libtorch's code, the
  # mapped weights: pages the kernel may drop under memory pressure and fault in again)
  rss=$(awk '/^VmRSS:/ {a = $2} /^RssAnon:/ {b = $2} /^RssFile:/ {c = $2} END {if (a) print a, b, c}' "/proc/$PID/status" 2> /dev/null || true)
  [ -n "$rss" ] && echo "$t $rss" >> "$OUT/rss.txt"
  if [[ $DEVICE == cuda* ]]; then  # the whole card's used memory: the soak is alone on it
    index=${DEVICE#cuda}; index=${index#:}
    used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "${index:-0}" 2> /dev/null | head -1 || true)
    [ -n "$used" ] && echo "$t $used" >> "$OUT/device.txt"
  fi
  sleep "$SAMPLE_S"
done
status=0
wait "$PID" || status=$?
PID=""

python3 - "$OUT" "$FRAMES" "$STREAMS" "$WARMUP_S" "$RSS_BOUND_MB" "$status" "$DEVICE_BOUND_MB" "$REPORT_S" "$DROP_POLICY" << 'EOF'
import os, re, sys, collections
out, frames, streams, warmup, bound_mb, status, device_bound_mb, report_s = sys.argv[1], *map(int, sys.argv[2:9])
policy = sys.argv[9]
err = open(f"{out}/stderr.txt").read()
ok = status == 0
if not ok:
    print(f"qwenvl-launch exited {status}:\n{err[-2000:]}")
fields = ("asked", "answered", "dropped", "failed", "cancelled")
rows, total = [], collections.Counter()
for name, text in re.findall(r"stats of (s\d+): (.*)", err):
    v = {f: int(re.search(rf"\b{f}=\(guint64\)(\d+)", text).group(1)) for f in fields}
    ended = v["answered"] + v["dropped"] + v["failed"] + v["cancelled"]
    good = ended == frames
    ok &= good
    total.update(v)
    rows.append(f"| {name} | {frames} | " + " | ".join(str(v[f]) for f in fields) + f" | {'yes' if good else 'NO'} |")
ok &= len(rows) == streams
print(f"soak: {streams} streams x {frames} frames, drop-policy={policy}")
print("| stream | frames | asked | answered | dropped | failed | cancelled | adds up |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print(f"| all | {frames * streams} | " + " | ".join(str(total[f]) for f in fields) + " | |")
reasons = collections.Counter(re.findall(r"warning from \S+: (.{0,80})", err))
for reason, n in reasons.most_common(5):
    print(f"warning x{n}: {reason}")
def memory(name, path, column, unit_mb, bound=None):
    """Growth after warm-up of one sampled series ("seconds values..." lines), checked against its bound."""
    samples = [(int(l.split()[0]), int(l.split()[column])) for l in open(path)]
    after = [v for t, v in samples if t >= warmup]
    if len(after) < 2:
        print(f"{name}: too few samples after warm-up (raise DURATION_S or lower WARMUP_S)")
        return False
    growth = (max(after) - after[0]) / unit_mb
    print(f"{name}: {after[0] / unit_mb:.0f} MB after warm-up ({warmup} s), peak {max(after) / unit_mb:.0f} MB, "
          f"at the end {after[-1] / unit_mb:.0f} MB, growth to the peak {growth:.1f} MB"
          + (f" (bound {bound} MB)" if bound is not None else " (not bounded)") + f", {len(samples)} samples")
    series, due = [], 0
    for t, v in samples:  # the first sample at or after each multiple of report_s
        if t >= due:
            series.append(f"{v / unit_mb:.0f}")
            due = (t // report_s + 1) * report_s
    print(f"  every {report_s} s (MB):", " ".join(series))
    return bound is None or growth < bound
# A leak grows the anonymous part; the file-backed part moves with the machine's memory pressure.
ok &= memory("resident memory, anonymous (heap)", f"{out}/rss.txt", 2, 1024, bound_mb)
memory("resident memory, file-backed (code, mapped weights)", f"{out}/rss.txt", 3, 1024)
memory("resident memory, all (VmRSS)", f"{out}/rss.txt", 1, 1024)
if os.path.exists(f"{out}/device.txt"):
    ok &= memory("device memory (the card's, nvidia-smi)", f"{out}/device.txt", 1, 1, device_bound_mb)
print("soak:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
