// libFuzzer harness: a model directory's configuration files read by load_model_files. The input's
// parts (cut at "\n---\n") become, in order, config.json, generation_config.json,
// preprocessor_config.json, processor_config.json and video_preprocessor_config.json; a part left
// out is a file left out. What loads must be sizes the engine can allocate for.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "model/config.h"
#include "qwenvl/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const char* const kFiles[] = {"config.json", "generation_config.json", "preprocessor_config.json",
                                       "processor_config.json", "video_preprocessor_config.json"};
  const std::vector<std::string> parts = fuzz::split_parts(data, size, std::size(kFiles));
  fuzz::TempDir dir;
  for (size_t i = 0; i < parts.size(); ++i) dir.write(kFiles[i], parts[i]);
  try {
    const model::ModelFiles files = model::load_model_files(dir.path());
    const model::TextConfig& t = files.model.text;
    const model::VisionConfig& v = files.model.vision;
    fuzz::require(t.num_hidden_layers >= 1 && t.num_hidden_layers <= 1024, "text layers out of bounds");
    fuzz::require(v.depth >= 1 && v.depth <= 1024, "vision depth out of bounds");
    fuzz::require(static_cast<int64_t>(t.layer_types.size()) == t.num_hidden_layers, "one layer type per layer");
    fuzz::require(t.hidden_size % t.num_attention_heads == 0, "text heads do not divide the width");
    fuzz::require(v.hidden_size % v.num_heads == 0, "vision heads do not divide the width");
  } catch (const Error& e) {
    fuzz::require(std::string(e.what()).find(dir.path().string()) != std::string::npos,
                  std::string("the error names no file of the model directory: ") + e.what());
    fuzz::require(std::string(e.what()).find('\n') == std::string::npos, std::string("not one line: ") + e.what());
  }
  return 0;
}
