// The one table of Qwen2.5-VL's weights: every tensor Qwen2_5_VLForConditionalGeneration holds,
// named as transformers 5.17 names it in memory (model.visual.*, model.language_model.*,
// lm_head.weight), with the shape a ModelConfig implies, and the renaming of checkpoint keys
// (the Hub's visual.* / model.*, the 4.52+ model.visual.* / model.language_model.*) onto them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"

namespace qwenvl::model {

namespace names {
inline const std::string kVisual = "model.visual.";
inline const std::string kLanguageModel = "model.language_model.";
inline const std::string kEmbedTokens = "model.language_model.embed_tokens.weight";
inline const std::string kLmHead = "lm_head.weight";
std::string vision_block(int64_t i);  // "model.visual.blocks.{i}."
std::string text_layer(int64_t i);    // "model.language_model.layers.{i}."
}  // namespace names

struct TensorSpec {
  std::string name;  // canonical (transformers 5.17 in-memory) name
  std::vector<int64_t> shape;
};

// Transformers 5.17's load-time renaming for Qwen2_5_VLForConditionalGeneration
// (conversion_mapping.py, "Qwen2VLForConditionalGeneration"): ^visual -> model.visual, then
// ^model(?!\.(language_model|visual)) -> model.language_model. Other keys pass unchanged.
std::string rename_checkpoint_key(const std::string& key);

// The name transformers 5.17 save_pretrained writes for a canonical name (the original Hub names).
std::string original_checkpoint_key(const std::string& canonical);

class WeightTable {
 public:
  explicit WeightTable(const ModelConfig& config);

  // In module order: vision tower, language model, lm_head.
  const std::vector<TensorSpec>& specs() const { return specs_; }
  const TensorSpec* find(const std::string& canonical) const;

  // A checkpoint key's canonical name, as transformers resolves it: rename_checkpoint_key, then
  // the base-model prefix "model." added when only the prefixed name is a weight (a checkpoint of
  // the bare Qwen2_5_VLModel stores language_model.*). Keys of no weight come back renamed only.
  std::string canonical_name(const std::string& checkpoint_key) const;

 private:
  std::vector<TensorSpec> specs_;
  std::map<std::string, size_t> index_;
};

}  // namespace qwenvl::model
