#!/usr/bin/env bash
# The main job, end to end on a clean clone: installs what is missing and builds (scripts/setup.sh),
# writes the fixtures (scripts/make_fixtures.sh: tiny random-weight models and sample media), then
# asks qwenvl-cli about the sample image and the sample clip, and shows how to run a real model.
#   scripts/demo.sh [BUILD_DIR]      (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"

scripts/setup.sh "$build"
scripts/make_fixtures.sh "$build/fixtures"

cli=$build/tools/qwenvl-cli
if [ ! -x "$cli" ]; then
  echo "demo: $cli was not built (it needs OpenCV's imgcodecs and videoio development files)" >&2
  exit 1
fi
model=$build/fixtures/models/tiny-a
media=$build/fixtures/media

cat <<EOF

== qwenvl-cli on the sample image ($media/sample.png) ==
The model, $model, is a tiny Qwen2.5-VL with RANDOM weights
(no weights are downloaded), so the caption below is gibberish: real tokens of Qwen2's
vocabulary in no meaningful order. Greedy and without repetition penalty, it is transformers'
answer for this model and image, token for token (tests/tools/test_qwenvl_cli.cpp checks
exactly this command against it).

\$ $cli --model $model --image $media/sample.png --prompt "Describe this image." --temperature 0 --repetition-penalty 1.0 --max-new-tokens 20
EOF
"$cli" --model "$model" --image "$media/sample.png" --prompt "Describe this image." --temperature 0 \
  --repetition-penalty 1.0 --max-new-tokens 20

cat <<EOF

== and on the sample video, with --json (ids, prompt length, time to first token, total) ==
\$ $cli --model $model --video $media/clip.avi --prompt "What happens in this clip?" --temperature 0 --max-new-tokens 8 --json
EOF
"$cli" --model "$model" --video "$media/clip.avi" --prompt "What happens in this clip?" --temperature 0 \
  --max-new-tokens 8 --json

cat <<EOF

== with a real model ==
Download Qwen2.5-VL-3B-Instruct or Qwen2.5-VL-7B-Instruct yourself (for example
\`huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct --local-dir ~/models/Qwen2.5-VL-7B-Instruct\`), then:

  $cli --model ~/models/Qwen2.5-VL-7B-Instruct --image photo.jpg --prompt "Describe this image."
  $cli --model ~/models/Qwen2.5-VL-7B-Instruct --video clip.mp4 --fps 2 --prompt "What happens in this video?"

On the CPU it runs in fp32 (slow for 7B, about 4 bytes of memory per parameter); add
\`--device cuda\` on a machine with an NVIDIA Hopper GPU and a build with CUDA (bf16). See
\`$cli --help\` for every option.
EOF
