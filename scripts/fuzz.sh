#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ (clang, ASan + UBSan, from just the sources each
# parser needs) and runs each for a bounded time, FUZZ_JOBS at a time (one core each), then prints a
# table: fuzzer, seconds, executions, new findings. Exits non-zero on any crash, leak, timeout or
# out-of-memory (its input is kept in BUILD/artifacts/<fuzzer>/ to become a regression test).
#   scripts/fuzz.sh [SECONDS_PER_FUZZER] [FUZZER...]     (default 60 s, every fuzzer)
#   SECONDS 0 replays the seed corpora only (tests/fuzz/corpus/<fuzzer>/): a quick check for CI;
#   SECONDS "build" builds the fuzzers and runs nothing.
# Environment: FUZZ_BUILD (default build-fuzz), FUZZ_JOBS (parallel compiles and runs, default 2),
# FUZZ_RSS_MB (memory limit, default 2048), FUZZ_TIMEOUT (seconds per input, default 10),
# QWENVL_TORCH_DIR (the torch package; default: .venv's, as scripts/setup.sh makes it) for the three
# fuzzers that link libtorch (safetensors tensors are ATen views; a runtime Sequence holds tensors);
# without it they are skipped.
# Reproduce a finding: BUILD/bin/<fuzzer> BUILD/artifacts/<fuzzer>/crash-...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
shift || true
build=${FUZZ_BUILD:-build-fuzz}
jobs=${FUZZ_JOBS:-2}
rss_mb=${FUZZ_RSS_MB:-2048}
timeout_s=${FUZZ_TIMEOUT:-10}

# fuzzer | flavour (plain: no libtorch; torch; png: libpng) | largest input | sources besides the harness
specs=(
  "fuzz_chat_template|plain|4096|jinja chat"
  "fuzz_chat_messages|plain|4096|jinja chat"
  "fuzz_prompt|plain|2048|jinja chat tokenizer engine/chat/prompt.cpp"
  "fuzz_config|plain|8192|engine/model/config.cpp"
  "fuzz_tokenizer_json|plain|8192|tokenizer"
  "fuzz_bpe_encode|plain|2048|tokenizer"
  "fuzz_png|png|65536|tools/media_reader.cpp tools/media_reader_png.cpp tools/image_header.cpp engine/preprocessing/frame_view.cpp"
  "fuzz_chat_request|plain|8192|tools/server/chat_request.cpp tools/server/data_uri.cpp tools/server/api_error.cpp tools/server/chat_response.cpp tools/image_header.cpp"
  "fuzz_alert_condition|plain|4096|gst-plugin/alert_condition.cpp"
  "fuzz_device_list|plain|1024|engine/runtime/placement/device_list.cpp engine/runtime/placement/byte_size.cpp engine/runtime/placement/device_profile.cpp"
  "fuzz_completion_events|plain|8192|remote/completion_events.cpp"
  "fuzz_json_schema|xgrammar|4096|tokenizer engine/structured/number_bounds.cpp engine/structured/schema_features.cpp engine/structured/constraint_grammar.cpp engine/structured/constraint_check.cpp engine/structured/token_constraint.cpp xgrammar"
  "fuzz_stop_strings|torch|2048|tokenizer engine/runtime/stopping.cpp engine/runtime/generation_settings.cpp"
  "fuzz_safetensors|torch|4096|engine/model/safetensors.cpp"
  "fuzz_shard_index|torch|4096|engine/model/weights.cpp engine/model/weight_names.cpp engine/model/safetensors.cpp engine/model/config.cpp"
)
# Source groups named above.
declare -A groups=(
  [jinja]="engine/chat/jinja/value.cpp engine/chat/jinja/lexer.cpp engine/chat/jinja/parser.cpp engine/chat/jinja/builtins.cpp engine/chat/jinja/template.cpp"
  [chat]="engine/chat/chat_template.cpp"
  [xgrammar]=""  # filled below from the unpacked source distribution
  [tokenizer]="engine/tokenizer/tokenizer.cpp engine/tokenizer/bpe.cpp engine/tokenizer/split_regex.cpp engine/tokenizer/utf8.cpp engine/tokenizer/incremental_decoder.cpp"
)

# clang with libFuzzer and the sanitizer runtimes: Debian's clang-14 and libclang-rt-14-dev.
cxx=${FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++-14 clang++; do command -v "$c" >/dev/null && cxx=$c && break; done
fi
if [ -z "$cxx" ] || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
    "$cxx" -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
  echo "fuzz: installing clang-14 and libclang-rt-14-dev"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends clang-14 libclang-rt-14-dev
  cxx=clang++-14
fi
ccache=""; command -v ccache >/dev/null && ccache=ccache
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}

torch_dir=${QWENVL_TORCH_DIR:-}
if [ -z "$torch_dir" ] && [ -x .venv/bin/python ]; then
  torch_dir=$(.venv/bin/python -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null || true)
fi

# xgrammar's C++ core, as scripts/setup.sh unpacks it (third_party/xgrammar/meson.build builds the same
# sources): the schema fuzzer compiles it with the sanitizers too.
xgrammar_dir=${QWENVL_XGRAMMAR_DIR:-${QWENVL_CACHE:-$HOME/.cache/qwenvl}/xgrammar-0.2.9}
[ -d "$xgrammar_dir/cpp" ] && groups[xgrammar]=$(find "$xgrammar_dir/cpp" -name '*.cc' -not -path '*/tvm_ffi/*' | sort | tr '\n' ' ')

# -O1 keeps the sanitizers' reports readable; line tables are all a report's stack needs (full debug
# information took 7% more of the build, 2026-12-07); UB aborts (-fno-sanitize-recover) so that it is a finding.
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
flags=(-std=c++17 -gline-tables-only -O1 -fno-omit-frame-pointer "${sanitize[@]}" -DFMT_HEADER_ONLY=1 -D_GLIBCXX_USE_CXX11_ABI=1
       -I. -Iengine/include -Iengine -Itools -Itests/fuzz $(pkg-config --cflags simdjson))
flavour_flags() {
  case $1 in
    torch) echo "-isystem $torch_dir/include -isystem $torch_dir/include/torch/csrc/api/include" ;;
    png) echo "$(pkg-config --cflags libpng)" ;;
    xgrammar) echo "-isystem $xgrammar_dir/include -isystem $xgrammar_dir/cpp -isystem $xgrammar_dir/3rdparty/picojson -isystem $xgrammar_dir/3rdparty/dlpack/include -DXGRAMMAR_ENABLE_CPPTRACE=0 -w" ;;
    *) echo "" ;;
  esac
}
flavour_libs() {
  case $1 in
    torch) echo "-L$torch_dir/lib -Wl,-rpath,$torch_dir/lib -Wl,--no-as-needed -ltorch_cpu -lc10 -Wl,--as-needed" ;;
    png) echo "$(pkg-config --libs libpng)" ;;
    *) echo "" ;;
  esac
}

wanted=("$@")
selected=()
for spec in "${specs[@]}"; do
  IFS='|' read -r name flavour max_len sources <<<"$spec"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  if [ "$flavour" = xgrammar ] && [ -z "${groups[xgrammar]}" ]; then
    echo "fuzz: skipping $name (no xgrammar sources in $xgrammar_dir: run scripts/setup.sh)"
    continue
  fi
  if [ "$flavour" = torch ] && [ -z "$torch_dir" ]; then
    echo "fuzz: skipping $name (no libtorch: run scripts/setup.sh or set QWENVL_TORCH_DIR)"
    continue
  fi
  selected+=("$spec")
done

# 1. Objects, each source once per flavour (a fuzzer's objects must see one fmt: libtorch's or Debian's).
mkdir -p "$build/obj" "$build/bin"
compile_list=$(mktemp)
trap 'rm -f "$compile_list"' EXIT
for spec in "${selected[@]}"; do
  IFS='|' read -r name flavour max_len sources <<<"$spec"
  files="tests/fuzz/$name.cpp"
  for s in $sources; do files+=" ${groups[$s]:-$s}"; done
  for f in $files; do echo "$flavour $f"; done
done | sort -u >"$compile_list"
object_of() { echo "$build/obj/$1/${2%.cpp}.o"; }
compile_one() {
  local flavour=$1 source=$2 object
  object=$(object_of "$flavour" "$source")
  mkdir -p "$(dirname "$object")"
  # shellcheck disable=SC2046,SC2086
  $ccache "$cxx" $compile_flags $(flavour_flags "$flavour") -fsanitize=fuzzer-no-link -c "$source" -o "$object"
}
compile_flags="${flags[*]}"
export -f object_of flavour_flags compile_one
export build torch_dir xgrammar_dir cxx ccache compile_flags
echo "fuzz: compiling $(wc -l <"$compile_list") sources with $cxx"
xargs -P "$jobs" -L 1 bash -c 'compile_one "$@"' _ <"$compile_list" || { echo "fuzz: compilation failed"; exit 1; }

# 2. One binary per fuzzer.
for spec in "${selected[@]}"; do
  IFS='|' read -r name flavour max_len sources <<<"$spec"
  objects=$(object_of "$flavour" "tests/fuzz/$name.cpp")
  for s in $sources; do for f in ${groups[$s]:-$s}; do objects+=" $(object_of "$flavour" "$f")"; done; done
  # shellcheck disable=SC2046,SC2086
  "$cxx" "${sanitize[@]}" -fsanitize=fuzzer $objects -o "$build/bin/$name" -lpcre2-8 -lutf8proc $(pkg-config --libs simdjson) $(flavour_libs "$flavour")
done
[ "$seconds" = build ] && exit 0

# 3. Runs: FUZZ_JOBS fuzzers at a time (libFuzzer's is one process on one core), each within its
#    time; the corpus grows in BUILD/corpus. Each writes its table row to BUILD/rows/<fuzzer>.
run_one() {
  local name=$1 max_len=$2 seeds corpus artifacts before log start rc took execs found verdict
  seeds=tests/fuzz/corpus/$name
  corpus=$build/corpus/$name
  artifacts=$build/artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  before=$(find "$artifacts" -type f | wc -l)
  local dict=() run=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  log=$build/$name.log
  if [ "$seconds" = 0 ]; then
    run=(-runs=0 "$seeds")
  else
    run=(-max_total_time="$seconds" "$corpus" "$seeds")
  fi
  start=$(date +%s)
  rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$build/bin/$name" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" "${run[@]}" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  found=$(( $(find "$artifacts" -type f | wc -l) - before ))
  verdict=ok
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    verdict="FAILED (exit $rc): $(grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error|fuzz check failed|deadly signal|out-of-memory|timeout' "$log" || echo "see $log")"
    { echo "fuzz: $name failed; its log: $log"; tail -40 "$log"; } >&2
  fi
  printf '%-22s %6s %12s %8s  %s\n' "$name" "$took" "${execs:-?}" "$found" "$verdict" >"$build/rows/$name"
}
export -f run_one
export seconds rss_mb timeout_s
rm -rf "$build/rows"
mkdir -p "$build/rows"
for spec in "${selected[@]}"; do
  IFS='|' read -r name flavour max_len sources <<<"$spec"
  echo "$name $max_len"
done | xargs -P "$jobs" -L 1 bash -c 'run_one "$@"' _ || true
status=0
rows=()
for spec in "${selected[@]}"; do
  IFS='|' read -r name flavour max_len sources <<<"$spec"
  if [ -f "$build/rows/$name" ]; then
    rows+=("$(cat "$build/rows/$name")")
    grep -q ' ok$' "$build/rows/$name" || status=1
  else
    rows+=("$(printf '%-22s %6s %12s %8s  %s' "$name" - - - "FAILED: did not run")")
    status=1
  fi
done

printf '%-22s %6s %12s %8s  %s\n' fuzzer seconds executions findings result
printf '%s\n' "${rows[@]}"
exit $status
