#!/usr/bin/env bash
# Shows alerts on answers from a fixed set of words: qwenvl asks about one frame per INTERVAL_NS a
# question answered with one word (yes or no), and alert-when marks the answers that say yes.
# qwenvl-launch prints every answer as a JSON line, "alert": true on those (jq 'select(.alert)' keeps
# them); an application gets each as a qwenvl-alert element message on the bus (gst-launch-1.0 -m
# shows them). Until the element constrains answers to a list of choices, the question itself asks
# for one word and the pattern allows case, quotes and punctuation around it; an answer in other
# words is no alert. CHANGE_THRESHOLD (0-255, e.g. 4) asks only about frames that changed since the
# last one asked. With the random-weight fixture model (tiny-a) the text is gibberish and nothing
# alerts: ALERT_WHEN='regex:^' makes every answer an alert.
# Usage: pipelines/alert.sh [MODEL] [VIDEO]
#   (env: MODEL, VIDEO, BUILD, FRAMES, INTERVAL_NS, PROMPT, ALERT_WHEN, CHANGE_THRESHOLD)
# Without a VIDEO: FRAMES frames of videotestsrc's moving ball.
set -euo pipefail
source "$(dirname "$0")/common.sh"
VIDEO=${2:-${VIDEO:-}}
FRAMES=${FRAMES:-30}
INTERVAL_NS=${INTERVAL_NS:-1000000000}
PROMPT=${PROMPT:-Is there a person in this picture? Answer with one word: yes or no.}
default_alert='regex:(?i)^\W*yes\b'
ALERT_WHEN=${ALERT_WHEN:-$default_alert}
CHANGE_THRESHOLD=${CHANGE_THRESHOLD:-0}

# A property value quoted for a pipeline description, where a backslash escapes the next character.
quoted() {
  local value=${1//\\/\\\\}
  printf '"%s"' "${value//\"/\\\"}"
}

if [ -n "$VIDEO" ]; then
  if [ ! -f "$VIDEO" ]; then echo "alert.sh: video '$VIDEO' not found" >&2; exit 1; fi
  source_description="filesrc location=$(quoted "$VIDEO") ! decodebin"
else
  source_description="videotestsrc pattern=ball num-buffers=$FRAMES ! video/x-raw,width=320,height=240,framerate=10/1"
fi

# Greedy (temperature=0): the likeliest word, the same for the same frame.
exec "$QWENVL_LAUNCH" "$source_description ! videoconvert \
  ! qwenvl model=$(quoted "$MODEL") mode=sync interval=$INTERVAL_NS max-new-tokens=4 temperature=0 \
    change-threshold=$CHANGE_THRESHOLD prompt=$(quoted "$PROMPT") alert-when=$(quoted "$ALERT_WHEN") \
  ! fakesink"
