// The published shapes of Qwen2.5-VL 3B, 7B, 32B and 72B, written as model directories that hold
// only config.json and preprocessor_config.json: all the planner reads. Where each came from:
//   3B, 7B: the Hub's Qwen/Qwen2.5-VL-{3B,7B}-Instruct config.json, as scripts/bench/write_random_model.py
//           transcribes them (the vision MLP is 3420 wide in both).
//   32B, 72B: the Hub's Qwen/Qwen2.5-VL-{32B,72B}-Instruct config.json, as torchtune's builders
//           transcribe them (pytorch/torchtune, torchtune/models/qwen2_5_vision/_model_builders.py:
//           qwen2_5_vl_32b, qwen2_5_vl_72b; their vision MLP is 3456 wide).
//   Every one: vision depth 32, width 1280, 16 heads, patch 14, merge 2, window 112, full attention
//   in blocks 7, 15, 23, 31, out_hidden_size = the text width; preprocessor_config.json's
//   min_pixels 3136 and max_pixels 12845056.
//   parameters: what the Hub lists for the published safetensors (0 where we do not know it exactly).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace qwenvl::test {

struct PublishedShape {
  const char* name;
  int64_t hidden, intermediate, layers, heads, kv_heads, vocab;
  bool tied;
  int64_t vision_intermediate;
  int64_t parameters;
};

inline const PublishedShape kQwen3B{"Qwen2.5-VL-3B-Instruct", 2048, 11008, 36, 16, 2, 151936, true, 3420, 3754622976};
inline const PublishedShape kQwen7B{"Qwen2.5-VL-7B-Instruct", 3584, 18944, 28, 28, 4, 152064, false, 3420, 8292166656};
inline const PublishedShape kQwen32B{
    "Qwen2.5-VL-32B-Instruct", 5120, 27648, 64, 40, 8, 152064, false, 3456, 33452718336};
inline const PublishedShape kQwen72B{"Qwen2.5-VL-72B-Instruct", 8192, 29568, 80, 64, 8, 152064, false, 3456, 0};

// Writes parent/<name>/ with the two files (flat, as the Hub has them) and returns it.
inline std::filesystem::path write_model_dir(const PublishedShape& s, const std::filesystem::path& parent) {
  const std::filesystem::path dir = parent / s.name;
  std::filesystem::create_directories(dir);
  nlohmann::json config = {{"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
                           {"model_type", "qwen2_5_vl"},
                           {"hidden_size", s.hidden},
                           {"intermediate_size", s.intermediate},
                           {"num_hidden_layers", s.layers},
                           {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.kv_heads},
                           {"vocab_size", s.vocab},
                           {"tie_word_embeddings", s.tied},
                           {"rms_norm_eps", 1e-6},
                           {"rope_theta", 1000000.0},
                           {"torch_dtype", "bfloat16"},
                           {"rope_scaling", {{"type", "mrope"}, {"mrope_section", {16, 24, 24}}}},
                           {"vision_config",
                            {{"depth", 32},
                             {"hidden_size", 1280},
                             {"intermediate_size", s.vision_intermediate},
                             {"num_heads", 16},
                             {"in_chans", 3},
                             {"out_hidden_size", s.hidden},
                             {"patch_size", 14},
                             {"spatial_merge_size", 2},
                             {"spatial_patch_size", 14},
                             {"window_size", 112},
                             {"fullatt_block_indexes", {7, 15, 23, 31}},
                             {"tokens_per_second", 2},
                             {"temporal_patch_size", 2}}}};
  nlohmann::json preprocessor = {{"min_pixels", 3136},
                                 {"max_pixels", 12845056},
                                 {"patch_size", 14},
                                 {"temporal_patch_size", 2},
                                 {"merge_size", 2},
                                 {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                                 {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                                 {"image_processor_type", "Qwen2VLImageProcessor"},
                                 {"processor_class", "Qwen2_5_VLProcessor"}};
  std::ofstream(dir / "config.json") << config.dump(2);
  std::ofstream(dir / "preprocessor_config.json") << preprocessor.dump(2);
  return dir;
}

}  // namespace qwenvl::test
