// The weights of a stage's part, by their canonical names (stage_memory.h).
#include "runtime/stages/stage_memory.h"

#include <string>

#include "model/weight_names.h"

namespace qwenvl::runtime::stages {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Whether the weight `name` belongs to `part`.
bool held(const std::string& name, const nn::ModelPart& part, int64_t end_layer) {
  namespace names = model::names;
  if (starts_with(name, names::kVisual)) return part.vision;
  if (name == names::kEmbedTokens) return part.embeddings;
  if (name == names::kLmHead || name == names::kLanguageModel + "norm.weight") return part.lm_head;
  for (int64_t l = part.first_layer; l < end_layer; ++l)
    if (starts_with(name, names::text_layer(l))) return true;
  return false;
}

}  // namespace

int64_t part_weight_bytes(const model::Weights& weights, const nn::ModelPart& part, int64_t num_layers) {
  const int64_t end_layer = part.end_layer < 0 ? num_layers : part.end_layer;
  int64_t bytes = 0;
  for (const std::string& name : weights.names()) {
    const model::Weight& w = weights.entry(name);
    // Tied: the LM head is the embeddings' matrix, counted once where the part holds both.
    if (!held(name, part, end_layer) || (!w.alias_of.empty() && held(w.alias_of, part, end_layer))) continue;
    bytes += static_cast<int64_t>(w.tensor.nbytes());
  }
  return bytes;
}

}  // namespace qwenvl::runtime::stages
