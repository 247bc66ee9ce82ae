// libFuzzer harness: stop strings as --stop (qwenvl-cli), the element's stop-strings property or a
// request give them (the first part, one per line), against generated text (the second part, turned
// into tokens by a Qwen2-style tokenizer and accepted one at a time by runtime::accept_token). What is
// streamed is never taken back, the answer never holds a stop string, and without a stop the answer
// is the whole decoded text.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "model/config.h"
#include "qwenvl/error.h"
#include "runtime/generation_settings.h"
#include "runtime/sequence.h"
#include "runtime/stopping.h"
#include "tiny_tokenizer.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const fuzz::TempDir dir;
  static const model::Tokenizer tokenizer =
      model::Tokenizer::from_file(dir.write("tokenizer.json", fuzz::tiny_qwen2_tokenizer_json()));
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 2);
  if (parts.size() < 2) return 0;
  SamplingParams params;
  for (size_t start = 0; start <= parts[0].size();) {
    const size_t end = std::min(parts[0].find('\n', start), parts[0].size());
    params.stop_strings.push_back(parts[0].substr(start, end - start));
    start = end + 1;
  }
  const std::vector<int32_t> ids = tokenizer.encode(parts[1]);
  params.max_new_tokens = static_cast<int>(ids.size()) + 1;
  runtime::Sequence s;
  try {
    s.settings = runtime::resolve_generation(params, model::GenerationConfig{}, model::ModelConfig{}, 16);
  } catch (const Error&) {
    return 0;  // the engine refuses these stop strings (an empty one) before generating
  }
  s.settings.eos_token_ids.clear();
  s.request.sampling = params;
  std::string streamed;
  s.request.on_partial = [&](RequestId, std::string_view text) { streamed += text; };
  s.decoder = std::make_unique<model::IncrementalDecoder>(tokenizer, true);
  runtime::StopReason reason = runtime::StopReason::kNone;
  for (int32_t id : ids) {
    reason = runtime::accept_token(s, id, int64_t{1} << 40);
    fuzz::require(s.text.compare(0, streamed.size(), streamed) == 0, "streamed text was taken back");
    if (reason != runtime::StopReason::kNone) break;
  }
  for (const std::string& stop : s.settings.stop_strings)
    fuzz::require(s.text.find(stop) == std::string::npos, "the answer holds the stop string '" + stop + "'");
  if (reason == runtime::StopReason::kNone) {
    s.text += s.decoder->flush();
    const std::string whole = tokenizer.decode(ids, true);
    bool holds_stop = false;
    for (const std::string& stop : s.settings.stop_strings) holds_stop |= whole.find(stop) != std::string::npos;
    // A stop string made of a character only flush() completes is not seen: the text then ends it.
    fuzz::require(holds_stop || s.text == whole, "the unstopped answer differs from the decoded text");
  }
  return 0;
}
