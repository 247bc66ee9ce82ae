#!/usr/bin/env bash
# The bytes one frame costs on the wire with the remote engine (remote-image-format png against
# jpeg), at 640x480 and 1920x1080, for GStreamer test patterns (flat colour bars: the best case;
# snow, pure noise: the worst) and any images given (scaled to each size by videoscale), as a
# Markdown table. Encoded by build/remote/qwenvl-frame-bytes with the remote engine's own settings.
#   scripts/frame_bytes.sh [IMAGE...]          (BUILD=build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tool=${BUILD:-$root/build}/remote/qwenvl-frame-bytes
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| source | size | raw RGB | PNG | JPEG q90 | JPEG q75 | PNG encode | JPEG q90 encode |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
row() {  # NAME WIDTH HEIGHT FILE
  "$tool" "$2" "$3" "$4" 90 75 | python3 -c "$format_row" "$1"
}
format_row='
import json, sys
r = json.load(sys.stdin)
kib = lambda n: "{:,.0f} KiB".format(n / 1024)
cells = [sys.argv[1], "{}x{}".format(r["width"], r["height"]), kib(r["raw_bytes"]), kib(r["png"]["bytes"]),
         kib(r["jpeg90"]["bytes"]), kib(r["jpeg75"]["bytes"]), "{:.1f} ms".format(r["png"]["encode_ms"]),
         "{:.1f} ms".format(r["jpeg90"]["encode_ms"])]
print("| " + " | ".join(cells) + " |")'
for size in 640x480 1920x1080; do
  w=${size%x*} h=${size#*x}
  for pattern in smpte snow; do
    gst-launch-1.0 -q videotestsrc pattern=$pattern num-buffers=1 ! video/x-raw,format=RGB,width=$w,height=$h \
      ! filesink location="$work/frame.rgb"
    row "videotestsrc $pattern" "$w" "$h" "$work/frame.rgb"
  done
  for image in "$@"; do
    gst-launch-1.0 -q filesrc location="$image" ! decodebin ! videoconvert ! videoscale \
      ! video/x-raw,format=RGB,width=$w,height=$h,pixel-aspect-ratio=1/1 ! filesink location="$work/frame.rgb"
    row "$(basename "$image")" "$w" "$h" "$work/frame.rgb"
  done
done
