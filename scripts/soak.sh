#!/usr/bin/env bash
# A bounded soak (issue 15, item 6; outside CI): STREAMS live streams into as many qwenvl elements
# sharing one engine (engine-id), async mode, for DURATION_S seconds, run by qwenvl-launch --stats.
# Every frame is due (interval=0), so each must end as exactly one of answered, dropped (with a
# qwenvl-dropped reason) or failed/cancelled (with a reason): the script checks that the counts add
# up to the frames per stream and in all, and samples the resident memory of the process; its
# growth after warm-up (the first WARMUP_S seconds) must stay under RSS_BOUND_MB. Prints a table
# (paste it into docs/RELIABILITY.md) and exits non-zero when a check fails.
# Usage: scripts/soak.sh [MODEL]
#   env: BUILD, MODEL (default tiny-a), STREAMS (8), DURATION_S (600), FPS (10), WARMUP_S (60),
#        RSS_BOUND_MB (64), DROP_POLICY (skip-while-busy), MAX_NEW_TOKENS (8), DEVICE (cpu)
set -euo pipefail
source "$(dirname "$0")/../pipelines/common.sh"
STREAMS=${STREAMS:-8}
DURATION_S=${DURATION_S:-600}
FPS=${FPS:-10}
WARMUP_S=${WARMUP_S:-60}
RSS_BOUND_MB=${RSS_BOUND_MB:-64}
DROP_POLICY=${DROP_POLICY:-skip-while-busy}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-8}
DEVICE=${DEVICE:-cpu}
FRAMES=$((DURATION_S * FPS))
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

patterns=(smpte ball snow checkers-8 circular zone-plate gamut spokes)
PIPELINE=""
for ((i = 0; i < STREAMS; i++)); do
  PIPELINE+="videotestsrc is-live=true pattern=${patterns[$((i % 8))]} num-buffers=$FRAMES \
    ! video/x-raw,format=NV12,width=64,height=48,framerate=$FPS/1 \
    ! qwenvl name=s$i model=\"$MODEL\" device=$DEVICE engine-id=soak stream-id=s$i mode=async \
      drop-policy=$DROP_POLICY max-new-tokens=$MAX_NEW_TOKENS ! fakesink sync=true "
done

"$QWENVL_LAUNCH" --stats "$PIPELINE" > "$OUT/answers.jsonl" 2> "$OUT/stderr.txt" &
PID=$!
start=$(date +%s)
while kill -0 "$PID" 2> /dev/null; do  # resident memory every 5 s: "seconds kB"
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2> /dev/null || true)
  [ -n "$rss" ] && echo "$(($(date +%s) - start)) $rss" >> "$OUT/rss.txt"
  sleep 5
done
status=0
wait "$PID" || status=$?

python3 - "$OUT" "$FRAMES" "$STREAMS" "$WARMUP_S" "$RSS_BOUND_MB" "$status" "$DROP_POLICY" << 'EOF'
import re, sys, collections
out, frames, streams, warmup, bound_mb, status, policy = sys.argv[1], *map(int, sys.argv[2:7]), sys.argv[7]
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
samples = [tuple(map(int, l.split())) for l in open(f"{out}/rss.txt")]
after = [kb for t, kb in samples if t >= warmup]
if len(after) >= 2:
    growth_mb = (max(after) - after[0]) / 1024
    print(f"resident memory: {after[0] / 1024:.0f} MB after warm-up ({warmup} s), peak {max(after) / 1024:.0f} MB, "
          f"at the end {after[-1] / 1024:.0f} MB, growth to the peak {growth_mb:.1f} MB (bound {bound_mb} MB), "
          f"{len(samples)} samples")
    print("resident memory by minute (MB):", " ".join(f"{kb / 1024:.0f}" for t, kb in samples if t % 60 < 5))
    ok &= growth_mb < bound_mb
else:
    print("resident memory: too few samples after warm-up (raise DURATION_S or lower WARMUP_S)")
    ok = False
print("soak:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
