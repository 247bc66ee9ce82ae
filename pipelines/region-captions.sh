#!/usr/bin/env bash
# Shows region captions after a detector: qwenvlroitest (our stand-in for any element that attaches
# GstVideoRegionOfInterestMeta, such as a real object detector) marks two boxes on every frame, and
# qwenvl roi=true asks the model about each box, cropped out of the frame, once per INTERVAL_NS.
# qwenvl-launch prints one JSON line per box answer with roi_id, roi_type (the box's label) and
# roi_box (the crop, x y w h). {label} in PROMPT becomes each box's label. With the random-weight
# fixture model (tiny-a) the text is gibberish.
# Usage: pipelines/region-captions.sh [MODEL]   (env: MODEL, BUILD, FRAMES, INTERVAL_NS, BOXES, LABELS, PROMPT)
set -euo pipefail
source "$(dirname "$0")/common.sh"
FRAMES=${FRAMES:-10}
INTERVAL_NS=${INTERVAL_NS:-500000000}
BOXES=${BOXES:-8,8,40,40,ball;60,20,64,48,background}
LABELS=${LABELS:-}
PROMPT=${PROMPT:-What is in this {label\} region?}

exec "$QWENVL_LAUNCH" "videotestsrc pattern=ball num-buffers=$FRAMES ! video/x-raw,width=128,height=96,framerate=10/1 \
  ! qwenvlroitest boxes=\"$BOXES\" \
  ! qwenvl model=\"$MODEL\" roi=true roi-labels=\"$LABELS\" mode=sync interval=$INTERVAL_NS max-new-tokens=8 \
    prompt=\"$PROMPT\" \
  ! fakesink"
