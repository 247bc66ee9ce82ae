#!/usr/bin/env bash
# Shows qwenvl's text_src pad feeding textoverlay: each answer is burnt into the video as a caption.
# The camera (/dev/video0) when there is one, else videotestsrc; runs headless and writes a short
# captioned clip (Motion-JPEG in AVI) to $OUT (default: caption-overlay.avi) and one captioned PNG
# frame to ${OUT%.*}.png, and prints each answer as a JSON line. With the random-weight fixture
# model (tiny-a) the captions are gibberish; a real Qwen2.5-VL directory gives real ones.
# Usage: pipelines/caption-overlay.sh [MODEL]   (env: MODEL, BUILD, OUT, FRAMES, INTERVAL_NS)
set -euo pipefail
source "$(dirname "$0")/common.sh"
OUT=${OUT:-caption-overlay.avi}
FRAMES=${FRAMES:-30}
INTERVAL_NS=${INTERVAL_NS:-1000000000}

if [ -e /dev/video0 ]; then
  SOURCE="v4l2src device=/dev/video0 num-buffers=$FRAMES ! videoconvert ! videoscale ! video/x-raw,width=320,height=240"
else
  SOURCE="videotestsrc num-buffers=$FRAMES ! video/x-raw,width=320,height=240,framerate=10/1"
fi

# mode=sync: every asked frame waits for its answer, so the caption lands on the frame it describes.
"$QWENVL_LAUNCH" "$SOURCE ! qwenvl name=q model=\"$MODEL\" mode=sync interval=$INTERVAL_NS max-new-tokens=16 \
  ! videoconvert ! overlay.video_sink \
  q.text_src ! overlay.text_sink \
  textoverlay name=overlay valignment=bottom font-desc=\"Sans 10\" \
  ! videoconvert ! jpegenc ! avimux ! filesink location=\"$OUT\""
# The clip's first frame (captioned: in sync mode the first answer rides on it) as a PNG.
gst-launch-1.0 -q filesrc location="$OUT" ! avidemux ! jpegdec ! videoconvert ! pngenc snapshot=true \
  ! filesink location="${OUT%.*}.png" >&2
echo "wrote $OUT and ${OUT%.*}.png" >&2
