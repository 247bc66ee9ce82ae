// libFuzzer harness: model.safetensors.index.json read by Weights::load, in a model directory with a
// tiny config and one real shard (model-00001-of-00001.safetensors, holding the final norm only), so
// that entries naming it pass the shard checks and reach the tensor checks.
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_support.h"
#include "model/config.h"
#include "model/weights.h"
#include "qwenvl/error.h"

namespace {

// A Qwen2.5-VL of one text layer and one vision block, 8 wide.
constexpr const char* kConfig = R"({"model_type": "qwen2_5_vl", "vocab_size": 16, "hidden_size": 8,
  "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
  "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 0]}, "tie_word_embeddings": true,
  "vision_config": {"depth": 1, "hidden_size": 8, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 8,
  "fullatt_block_indexes": [0]}})";

// A safetensors file with one F32 tensor of 8 values named model.norm.weight.
std::string norm_shard() {
  const std::string header = R"({"model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})";
  std::string file(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return file + header + std::string(32, '\0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  static const std::string shard = norm_shard();
  fuzz::TempDir dir;
  const auto config_file = dir.write("config.json", kConfig);
  dir.write("model-00001-of-00001.safetensors", shard);
  dir.write(model::Weights::kIndexFile, std::string_view(reinterpret_cast<const char*>(data), size));
  const model::ModelConfig config = model::load_model_config(config_file);
  try {
    const model::Weights weights = model::Weights::load(dir.path(), config);
    fuzz::violated("a directory with one tensor loaded as a whole model");
  } catch (const Error& e) {
    fuzz::require(std::string(e.what()).find(dir.path().string()) != std::string::npos,
                  std::string("the error names no file of the model directory: ") + e.what());
  }
  return 0;
}
