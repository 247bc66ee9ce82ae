// libFuzzer harness: any bytes through a Qwen2-style tokenizer (tiny_tokenizer.h): encode, decode
// whole and streamed. Byte-level BPE loses nothing: ASCII text comes back as it went in, and streamed
// decoding always equals decode() (incremental_decoder.h).
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "qwenvl/error.h"
#include "tiny_tokenizer.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

namespace {

const qwenvl::model::Tokenizer& tokenizer() {
  static const qwenvl::fuzz::TempDir dir;
  static const qwenvl::model::Tokenizer t =
      qwenvl::model::Tokenizer::from_file(dir.write("tokenizer.json", qwenvl::fuzz::tiny_qwen2_tokenizer_json()));
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = tokenizer().encode(text);
  const std::string decoded = tokenizer().decode(ids, false);
  if (std::all_of(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0x80) == 0; }))
    fuzz::require(decoded == text, "ASCII text does not survive encode and decode");
  for (bool skip : {false, true}) {
    model::IncrementalDecoder decoder(tokenizer(), skip);
    std::string streamed;
    for (int32_t id : ids) streamed += decoder.push(id);
    streamed += decoder.flush();
    fuzz::require(streamed == tokenizer().decode(ids, skip), "streamed decoding differs from decode()");
  }
  return 0;
}
