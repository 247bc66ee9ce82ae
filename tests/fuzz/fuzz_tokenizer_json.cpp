// libFuzzer harness: tokenizer.json (and tokenizer_config.json, after a "\n---\n") loaded by
// Tokenizer::from_model_dir; a tokenizer that loads then encodes a text (the third part, or a fixed
// one) and decodes every id it gave, whole and one by one.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "qwenvl/error.h"
#include "tokenizer/incremental_decoder.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 3);
  fuzz::TempDir dir;
  dir.write("tokenizer.json", parts[0]);
  if (parts.size() > 1) dir.write("tokenizer_config.json", parts[1]);
  const std::string text = parts.size() > 2 ? parts[2] : "Hello, world! <|im_start|>user\n caf\xc3\xa9 123 \xe4\xbd\xa0\xe5\xa5\xbd";
  try {
    const model::Tokenizer tokenizer = model::Tokenizer::from_model_dir(dir.path());
    const std::vector<int32_t> ids = tokenizer.encode(text);
    for (bool skip : {false, true}) {
      const std::string whole = tokenizer.decode(ids, skip);
      model::IncrementalDecoder decoder(tokenizer, skip);
      std::string streamed;
      for (int32_t id : ids) streamed += decoder.push(id);
      streamed += decoder.flush();
      fuzz::require(streamed == whole, "streamed decoding differs from decode()");
    }
    for (int32_t id : ids) (void)tokenizer.id_to_token(id);  // every id encode gives is a token
    (void)tokenizer.vocab_size();
  } catch (const Error& e) {
    fuzz::require(std::string(e.what()).find(dir.path().string()) != std::string::npos,
                  std::string("the error names no file of the model directory: ") + e.what());
  }
  return 0;
}
