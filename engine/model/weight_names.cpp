#include "model/weight_names.h"

#include <fmt/format.h>

#include "qwenvl/error.h"

namespace qwenvl::model {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

std::string names::vision_block(int64_t i) { return fmt::format("model.visual.blocks.{}.", i); }
std::string names::text_layer(int64_t i) { return fmt::format("model.language_model.layers.{}.", i); }

std::string rename_checkpoint_key(const std::string& key) {
  // The regexes are anchored prefixes without a trailing dot, so "visual_x" and "modelx" are
  // renamed as well; reproduced as written.
  std::string renamed = key;
  if (starts_with(renamed, "visual")) renamed = "model.visual" + renamed.substr(6);
  if (starts_with(renamed, "model") && !starts_with(renamed, "model.language_model") &&
      !starts_with(renamed, "model.visual"))
    renamed = "model.language_model" + renamed.substr(5);
  return renamed;
}

std::string original_checkpoint_key(const std::string& canonical) {
  if (starts_with(canonical, names::kVisual)) return "visual." + canonical.substr(names::kVisual.size());
  if (starts_with(canonical, names::kLanguageModel)) return "model." + canonical.substr(names::kLanguageModel.size());
  return canonical;
}

WeightTable::WeightTable(const ModelConfig& config) {
  const VisionConfig& v = config.vision;
  const TextConfig& t = config.text;
  auto add = [this](std::string name, std::vector<int64_t> shape) {
    for (int64_t d : shape)
      if (d < 0) throw Error(fmt::format("config gives weight '{}' a negative dimension {}", name, d));
    specs_.push_back({std::move(name), std::move(shape)});
  };

  // Vision tower (Qwen2_5_VisionTransformerPretrainedModel).
  const int64_t vh = v.hidden_size;
  add(names::kVisual + "patch_embed.proj.weight", {vh, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size});
  for (int64_t i = 0; i < v.depth; ++i) {
    const std::string b = names::vision_block(i);
    add(b + "norm1.weight", {vh});
    add(b + "norm2.weight", {vh});
    add(b + "attn.qkv.weight", {3 * vh, vh});
    add(b + "attn.qkv.bias", {3 * vh});
    add(b + "attn.proj.weight", {vh, vh});
    add(b + "attn.proj.bias", {vh});
    for (const char* proj : {"gate_proj", "up_proj"}) {
      add(b + "mlp." + proj + ".weight", {v.intermediate_size, vh});
      add(b + "mlp." + proj + ".bias", {v.intermediate_size});
    }
    add(b + "mlp.down_proj.weight", {vh, v.intermediate_size});
    add(b + "mlp.down_proj.bias", {vh});
  }
  const int64_t merged = vh * v.spatial_merge_size * v.spatial_merge_size;
  add(names::kVisual + "merger.ln_q.weight", {vh});
  add(names::kVisual + "merger.mlp.0.weight", {merged, merged});
  add(names::kVisual + "merger.mlp.0.bias", {merged});
  add(names::kVisual + "merger.mlp.2.weight", {v.out_hidden_size, merged});
  add(names::kVisual + "merger.mlp.2.bias", {v.out_hidden_size});

  // Language model (Qwen2_5_VLTextModel).
  const int64_t h = t.hidden_size;
  if (t.num_attention_heads <= 0) throw Error("config: text num_attention_heads must be positive");
  const int64_t q_dim = t.num_attention_heads * t.head_dim();
  const int64_t kv_dim = t.num_key_value_heads * t.head_dim();
  add(names::kEmbedTokens, {t.vocab_size, h});
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const std::string l = names::text_layer(i);
    add(l + "self_attn.q_proj.weight", {q_dim, h});
    add(l + "self_attn.q_proj.bias", {q_dim});
    add(l + "self_attn.k_proj.weight", {kv_dim, h});
    add(l + "self_attn.k_proj.bias", {kv_dim});
    add(l + "self_attn.v_proj.weight", {kv_dim, h});
    add(l + "self_attn.v_proj.bias", {kv_dim});
    add(l + "self_attn.o_proj.weight", {h, q_dim});
    add(l + "mlp.gate_proj.weight", {t.intermediate_size, h});
    add(l + "mlp.up_proj.weight", {t.intermediate_size, h});
    add(l + "mlp.down_proj.weight", {h, t.intermediate_size});
    add(l + "input_layernorm.weight", {h});
    add(l + "post_attention_layernorm.weight", {h});
  }
  add(names::kLanguageModel + "norm.weight", {h});
  add(names::kLmHead, {t.vocab_size, h});

  for (size_t i = 0; i < specs_.size(); ++i) index_[specs_[i].name] = i;
}

const TensorSpec* WeightTable::find(const std::string& canonical) const {
  auto it = index_.find(canonical);
  return it == index_.end() ? nullptr : &specs_[it->second];
}

std::string WeightTable::canonical_name(const std::string& checkpoint_key) const {
  const std::string renamed = rename_checkpoint_key(checkpoint_key);
  if (find(renamed) == nullptr && find("model." + renamed) != nullptr) return "model." + renamed;
  return renamed;
}

}  // namespace qwenvl::model
