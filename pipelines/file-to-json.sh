#!/usr/bin/env bash
# Shows a video file captioned offline: decodebin reads any file GStreamer can decode, qwenvl asks
# the model about one frame per INTERVAL_NS and qwenvl-launch prints each answer as a JSON line
# (text, token_ids, stream_id, request_id, pts, latency, ttft, token counts) on stdout.
# With the random-weight fixture model (tiny-a) the text is gibberish.
# Usage: pipelines/file-to-json.sh [MODEL] [VIDEO]   (env: MODEL, VIDEO, BUILD, INTERVAL_NS, PROMPT)
# VIDEO defaults to the fixtures' small clip ($BUILD/fixtures/media/clip.avi).
set -euo pipefail
source "$(dirname "$0")/common.sh"
VIDEO=${2:-${VIDEO:-$BUILD/fixtures/media/clip.avi}}
INTERVAL_NS=${INTERVAL_NS:-500000000}
PROMPT=${PROMPT:-Describe this video frame.}
if [ ! -f "$VIDEO" ]; then echo "file-to-json.sh: video '$VIDEO' not found" >&2; exit 1; fi

# mode=sync: no frame is skipped because the engine is busy (a file has no deadline).
exec "$QWENVL_LAUNCH" "filesrc location=\"$VIDEO\" ! decodebin ! videoconvert \
  ! qwenvl model=\"$MODEL\" mode=sync interval=$INTERVAL_NS max-new-tokens=16 prompt=\"$PROMPT\" \
  ! fakesink"
