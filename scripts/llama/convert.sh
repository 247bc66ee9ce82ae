#!/usr/bin/env bash
# Converts a Qwen2.5-VL model directory to GGUF with the pinned llama.cpp's convert_hf_to_gguf.py:
# the language model (OUTTYPE: f32, f16 or bf16) and the vision projector (--mmproj, same type).
#   scripts/llama/convert.sh MODEL_DIR OUT_DIR [OUTTYPE (default f32)]
# Writes OUT_DIR/model-OUTTYPE.gguf and OUT_DIR/mmproj-OUTTYPE.gguf. Python: $PYTHON (default: the
# project's .venv, else python3) with torch, numpy, safetensors, transformers, PyYAML and tqdm; gguf
# is taken from llama.cpp's gguf-py, sentencepiece is not needed (pyshim/ stands in where missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
model=${1:?usage: convert.sh MODEL_DIR OUT_DIR [OUTTYPE]}
out=${2:?usage: convert.sh MODEL_DIR OUT_DIR [OUTTYPE]}
outtype=${3:-f32}
py=${PYTHON:-$here/../../.venv/bin/python}
[ -x "$py" ] || py=python3
[ -f "$llama_src/convert_hf_to_gguf.py" ] || { echo "convert.sh: no llama.cpp source at $llama_src (run build.sh)" >&2; exit 1; }
pythonpath=$llama_src/gguf-py
"$py" -c 'import sentencepiece' 2>/dev/null || pythonpath=$pythonpath:$here/pyshim
mkdir -p "$out"
t0=$(date +%s)
for part in model mmproj; do
  extra=(); [ $part = mmproj ] && extra=(--mmproj)
  PYTHONPATH=$pythonpath HF_HUB_OFFLINE=1 "$py" "$llama_src/convert_hf_to_gguf.py" "$model" \
    --outtype "$outtype" "${extra[@]}" --outfile "$out/$part-$outtype.gguf.part" > "$out/convert-$part.log" 2>&1 \
    || { tail -20 "$out/convert-$part.log" >&2; echo "convert.sh: $part conversion failed" >&2; exit 1; }
  # Renamed only when whole: the scripts take an existing mmproj-*.gguf as a finished conversion.
  mv "$out/$part-$outtype.gguf.part" "$out/$part-$outtype.gguf"
done
echo "convert: $model -> $out/{model,mmproj}-$outtype.gguf in $(( $(date +%s) - t0 )) s" >&2
