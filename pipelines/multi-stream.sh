#!/usr/bin/env bash
# Shows four video streams sharing one engine: four videotestsrc patterns into four qwenvl elements
# with the same model and engine-id, so the model is loaded once and the engine batches their
# requests. qwenvl-launch prints every answer as a JSON line; stream_id tells the streams apart
# (cam0..cam3). With the random-weight fixture model (tiny-a) the text is gibberish.
# Usage: pipelines/multi-stream.sh [MODEL]   (env: MODEL, BUILD, FRAMES, INTERVAL_NS)
set -euo pipefail
source "$(dirname "$0")/common.sh"
FRAMES=${FRAMES:-10}
INTERVAL_NS=${INTERVAL_NS:-500000000}

PIPELINE=""
patterns=(smpte ball snow checkers-8)
for i in 0 1 2 3; do
  PIPELINE+="videotestsrc pattern=${patterns[$i]} num-buffers=$FRAMES ! video/x-raw,width=64,height=64,framerate=10/1 \
    ! qwenvl model=\"$MODEL\" engine-id=shared stream-id=cam$i mode=sync interval=$INTERVAL_NS max-new-tokens=8 \
    ! fakesink "
done
exec "$QWENVL_LAUNCH" "$PIPELINE"
