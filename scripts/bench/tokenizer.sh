#!/usr/bin/env bash
# Tokenizer throughput, ours against HF tokenizers (what transformers 5.17 uses), same corpus, one
# thread, in one run; prints a Markdown table for docs/BENCHMARKS.md.
#   scripts/bench/tokenizer.sh [BUILD_DIR] [TOKENIZER (model dir or tokenizer.json)] [CORPUS] [N]
# Defaults: build, the fixtures' Qwen2 tokenizer, a generated ~2 MB corpus (multilingual text, code,
# emoji: qwen2_vocab.sample_texts, plus Python standard-library sources), N = 5.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
tokenizer=${2:-${QWENVL_FIXTURES:-$root/$build/fixtures}/tokenizers/qwen2}
corpus=${3:-$root/$build/tokenizer_corpus.txt}
n=${4:-5}
python=$root/.venv/bin/python
bench=$root/$build/tools/qwenvl-tokenizer-bench
[ -x "$bench" ] || { echo "missing $bench: build first (ninja -C $build)" >&2; exit 1; }

if [ ! -f "$corpus" ]; then
  "$python" - "$corpus" "$root/scripts/fixtures" <<'PY'
import sys, sysconfig, pathlib
sys.path.insert(0, sys.argv[2])
import qwen2_vocab
parts = ["\n".join(qwen2_vocab.sample_texts(2024, 12000))]
stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
for name in ["textwrap.py", "argparse.py", "difflib.py", "pathlib.py", "inspect.py"]:
    parts.append((stdlib / name).read_text(encoding="utf-8"))
pathlib.Path(sys.argv[1]).write_text("\n".join(parts), encoding="utf-8")
PY
fi

ours=$(OMP_NUM_THREADS=1 "$bench" "$tokenizer" "$corpus" "$n")
hf=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$python" - "$tokenizer" "$corpus" "$n" <<'PY'
import sys, time, pathlib
from transformers import AutoTokenizer
from tokenizers import Tokenizer
source, corpus, n = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
tok = AutoTokenizer.from_pretrained(source)._tokenizer if source.is_dir() else Tokenizer.from_file(str(source))
load = time.perf_counter() - start
text = open(corpus, "rb").read().decode("utf-8")  # bytes as-is: no newline translation
size = len(text.encode("utf-8"))
tokens = len(tok.encode(text, add_special_tokens=False).ids)  # warm-up
start = time.perf_counter()
for _ in range(n):
    tokens = len(tok.encode(text, add_special_tokens=False).ids)
seconds = (time.perf_counter() - start) / n
print(f"corpus_bytes={size} tokens={tokens} load_s={load:.3f} encode_s={seconds:.4f} "
      f"tokens_per_s={tokens / seconds:.0f} mb_per_s={size / seconds / 1e6:.2f}")
PY
)
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
[ "$(field "$ours" tokens)" = "$(field "$hf" tokens)" ] || echo "WARNING: token counts differ: ours $(field "$ours" tokens), HF $(field "$hf" tokens)" >&2
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "Date: $(date -u +%Y-%m-%d), machine: $cpu ($(nproc) cores), corpus: $(basename "$corpus") ($(field "$ours" corpus_bytes) bytes, $(field "$ours" tokens) tokens), $n runs after one warm-up"
echo "Command: scripts/bench/tokenizer.sh $*"
echo
echo "| tokenizer | load (s) | encode (s) | tokens/s | MB/s |"
echo "|---|---:|---:|---:|---:|"
echo "| qwenvl (C++) | $(field "$ours" load_s) | $(field "$ours" encode_s) | $(field "$ours" tokens_per_s) | $(field "$ours" mb_per_s) |"
echo "| HF tokenizers $("$python" -c 'import tokenizers; print(tokenizers.__version__)') | $(field "$hf" load_s) | $(field "$hf" encode_s) | $(field "$hf" tokens_per_s) | $(field "$hf" mb_per_s) |"
awk -v a="$(field "$ours" tokens_per_s)" -v b="$(field "$hf" tokens_per_s)" 'BEGIN { printf "| ratio qwenvl / HF | | | %.2fx | |\n", a / b }'
