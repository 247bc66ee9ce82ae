#!/usr/bin/env bash
# The main job, end to end on a clean clone: the caption overlay demo. Installs what is missing and
# builds (scripts/setup.sh), writes the fixtures (scripts/make_fixtures.sh: tiny random-weight models
# and a sample clip), then runs a GStreamer pipeline in which the qwenvl element asks the model about
# the clip's frames and draws each answer onto the video (overlay=true). It writes
#   $OUT/caption-overlay.avi   the captioned clip (Motion-JPEG)
#   $OUT/caption-overlay.png   its first frame, captioned (docs/caption-overlay.png is one such frame)
# and prints every answer as a JSON line (qwenvl-launch).
#   scripts/demo.sh [MODEL_DIR] [VIDEO]
#   env: BUILD (default build), OUT (default demo-out), INTERVAL_NS (default 1 s), MAX_NEW_TOKENS (24),
#        PROMPT, WIDTH x HEIGHT of the output (default 480x360)
# MODEL_DIR defaults to the tiny-a fixture (random weights: its captions are gibberish); give a
# Qwen2.5-VL-3B/7B-Instruct directory for real ones. VIDEO defaults to the fixtures' sample clip;
# any file GStreamer decodes works.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
out=${OUT:-demo-out}
interval=${INTERVAL_NS:-1000000000}
max_new_tokens=${MAX_NEW_TOKENS:-24}
prompt=${PROMPT:-Describe this video frame.}
width=${WIDTH:-480}
height=${HEIGHT:-360}

scripts/setup.sh "$build"
scripts/make_fixtures.sh "$build/fixtures"

model=${1:-$build/fixtures/models/tiny-a}
video=${2:-$build/fixtures/media/clip.avi}
launch=$build/tools/qwenvl-launch
for need in "$model" "$video" "$launch" "$build/gst-plugin/libgstqwenvl.so"; do
  if [ ! -e "$need" ]; then echo "demo: $need not found" >&2; exit 1; fi
done
export GST_PLUGIN_PATH="$root/$build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$out"
rm -f "$out"/frame-*.png

# mode=sync: each asked frame waits for its answer, so a caption is drawn onto the very frame it
# describes (and on the frames after it, until the next answer). The tee keeps the clip and a PNG
# of each frame.
pipeline="filesrc location=\"$video\" ! decodebin ! videoconvert ! videoscale add-borders=true \
  ! video/x-raw,format=RGB,width=$width,height=$height,pixel-aspect-ratio=1/1 \
  ! qwenvl model=\"$model\" mode=sync overlay=true interval=$interval max-new-tokens=$max_new_tokens \
      prompt=\"$prompt\" \
  ! videoconvert ! tee name=t \
  t. ! queue ! jpegenc ! avimux ! filesink location=\"$out/caption-overlay.avi\" \
  t. ! queue ! pngenc ! multifilesink location=\"$out/frame-%04d.png\""

cat <<EOF

== the caption overlay: $video through qwenvl overlay=true ==
Model: $model
EOF
if [ -z "${1:-}" ]; then
  cat <<EOF
(a tiny Qwen2.5-VL with RANDOM weights: nothing is downloaded, so the captions are gibberish, real
tokens of Qwen2's vocabulary in no meaningful order; characters outside ASCII are drawn as '?')
EOF
fi
cat <<EOF

\$ GST_PLUGIN_PATH=$build/gst-plugin $launch '$pipeline'
EOF
"$launch" "$pipeline"
cp "$out/frame-0000.png" "$out/caption-overlay.png"
rm -f "$out"/frame-*.png

cat <<EOF

Wrote $out/caption-overlay.avi (the captioned clip) and $out/caption-overlay.png (its first frame).
Each line above is one answer (text, token_ids, stream_id, request_id, pts, latency, ttft, tokens).

== with a real model, on a camera ==
Download Qwen2.5-VL-3B-Instruct or -7B-Instruct yourself (for example
\`huggingface-cli download Qwen/Qwen2.5-VL-3B-Instruct --local-dir ~/models/Qwen2.5-VL-3B-Instruct\`), then:

  scripts/demo.sh ~/models/Qwen2.5-VL-3B-Instruct my-video.mp4
  GST_PLUGIN_PATH=$build/gst-plugin gst-launch-1.0 v4l2src ! videoconvert \\
      ! qwenvl model=\$HOME/models/Qwen2.5-VL-3B-Instruct overlay=true interval=2000000000 \\
      ! videoconvert ! autovideosink

Add device=cuda to the qwenvl element on a machine with an NVIDIA Hopper GPU and a build with CUDA.
EOF
