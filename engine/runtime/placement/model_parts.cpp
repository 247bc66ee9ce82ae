#include "runtime/placement/model_parts.h"

#include <algorithm>
#include <string>

#include "model/weight_names.h"
#include "qwenvl/error.h"

namespace qwenvl::runtime::placement {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

void add(Part& part, const model::TensorSpec& spec, bool multiplies) {
  int64_t n = 1;
  for (int64_t d : spec.shape) n *= d;
  part.tensors.push_back(n);
  part.elements += n;
  if (multiplies && spec.shape.size() >= 2) part.matmul_elements += n;
}

}  // namespace

ModelParts model_parts(const model::ModelConfig& config) {
  const model::TextConfig& t = config.text;
  const model::VisionConfig& v = config.vision;
  ModelParts m;
  m.layers.resize(static_cast<size_t>(t.num_hidden_layers));
  m.tied = config.tie_word_embeddings;
  const std::string layers_prefix = model::names::kLanguageModel + "layers.";
  const model::WeightTable table(config);
  for (const model::TensorSpec& spec : table.specs()) {
    if (spec.name == model::names::kEmbedTokens) {
      add(m.embeddings, spec, false);  // a lookup, not a product
    } else if (spec.name == model::names::kLmHead) {
      add(m.lm_head, spec, true);
    } else if (starts_with(spec.name, model::names::kVisual)) {
      add(m.vision, spec, true);
    } else if (starts_with(spec.name, layers_prefix)) {
      const size_t layer = std::stoul(spec.name.substr(layers_prefix.size()));
      add(m.layers.at(layer), spec, true);
    } else if (spec.name == model::names::kLanguageModel + "norm.weight") {
      add(m.final_norm, spec, true);
    } else {
      throw Error("placement: weight '" + spec.name +
                  "' belongs to no part of the model");  // a new weight in the table
    }
  }
  m.hidden = t.hidden_size;
  m.intermediate = t.intermediate_size;
  m.heads = t.num_attention_heads;
  m.kv_heads = t.num_key_value_heads;
  m.head_dim = t.head_dim();
  m.vocab = t.vocab_size;
  m.vision_hidden = v.hidden_size;
  m.vision_intermediate = v.intermediate_size;
  m.vision_heads = v.num_heads;
  m.vision_head_dim = v.head_dim();
  m.vision_depth = v.depth;
  for (int64_t i = 0; i < v.depth; ++i)  // as the tower tests each block (a listed index may repeat)
    if (std::count(v.fullatt_block_indexes.begin(), v.fullatt_block_indexes.end(), i) > 0) ++m.vision_full_blocks;
  const int64_t window_side = std::max<int64_t>(1, v.window_size / v.patch_size);
  m.window_patches = window_side * window_side;
  m.patch_values = v.in_channels * v.temporal_patch_size * v.patch_size * v.patch_size;
  m.merge_unit = v.spatial_merge_size * v.spatial_merge_size;
  m.token_pixels = (v.patch_size * v.spatial_merge_size) * (v.patch_size * v.spatial_merge_size);
  m.merged_hidden = v.hidden_size * m.merge_unit;
  m.vision_out = v.out_hidden_size;
  return m;
}

}  // namespace qwenvl::runtime::placement
