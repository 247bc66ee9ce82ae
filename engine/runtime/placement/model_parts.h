// The parts of a Qwen2.5-VL model that a plan places, each with the element counts of its tensors,
// taken from the one weight table (model/weight_names.h) so that the planner's weights are the
// engine's to the element, and the dimensions the memory and time models read.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace qwenvl::runtime::placement {

struct Part {
  std::vector<int64_t> tensors;  // elements of each tensor
  int64_t elements = 0;          // their sum
  int64_t matmul_elements = 0;   // of the weights that multiply activations (2-D and up, embeddings excluded)
};

struct ModelParts {
  Part embeddings;           // model.language_model.embed_tokens
  std::vector<Part> layers;  // one per decoder layer
  Part final_norm;           // model.language_model.norm
  Part lm_head;              // lm_head (the embeddings again when tied: the engine shares them on one device)
  bool tied = false;         // tie_word_embeddings
  Part vision;               // patch embed, blocks and merger

  // The dimensions the models below read.
  int64_t hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  int64_t vision_hidden = 0, vision_intermediate = 0, vision_heads = 0, vision_head_dim = 0, vision_depth = 0;
  int64_t vision_full_blocks = 0;  // blocks that attend over the whole image (the rest within windows)
  int64_t window_patches = 0;      // patches in one attention window
  int64_t patch_values = 0;        // values of one patch: channels x temporal patch x patch x patch
  int64_t merge_unit = 0;          // patches per token (spatial_merge_size^2)
  int64_t token_pixels = 0;        // pixels per image token: (patch_size x spatial_merge_size)^2
  int64_t merged_hidden = 0;       // the merger's width: vision hidden x merge_unit
  int64_t vision_out = 0;          // out_hidden_size
};

ModelParts model_parts(const model::ModelConfig& config);

}  // namespace qwenvl::runtime::placement
