// What a plan must hold, with every default of PlanRequest resolved and checked: the batch, the
// context and its KV blocks, the largest image and how many one step admits, the prefill chunk,
// and the mean request the time model weighs (one image and a short question).
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "qwenvl/placement.h"
#include "runtime/placement/model_parts.h"

namespace qwenvl::runtime::placement {

// The mean request's image when the request names none: one 448x448 frame, the caption workload of
// docs/BENCHMARK-METHOD.md (256 image tokens).
constexpr int64_t kDefaultImagePixels = 448 * 448;

// Text tokens of a prompt around its image: the chat template's system and role markers (about 40
// tokens, docs/BENCHMARK-METHOD.md) and a short question.
constexpr int64_t kTextTokensPerPrompt = 64;

struct Workload {
  std::string dtype;  // "bfloat16", "float16", "float32"
  int64_t dtype_bytes = 0;
  int64_t max_batch = 0;  // sequences of one pipeline or one replica
  int64_t max_context = 0;
  int64_t block_size = 0;
  int64_t blocks_per_sequence = 0;  // ceil(max_context / block_size): a decode graph's table width
  int64_t kv_blocks = 0;            // max_batch x blocks_per_sequence, as the engine sizes its cache
  int64_t max_pixels = 0;
  int64_t image_tokens = 0;  // of the largest image (at most max_context - 1: a prompt must fit)
  int64_t image_patches = 0;
  // A contract with the executor: today's single-device engine runs every admitted prompt's images in
  // one vision forward and every admitted prompt in one prefill forward; a staged executor keeps
  // them to images_per_step and prefill_chunk.
  int64_t images_per_step = 0;
  int64_t vision_tokens = 0;  // of one step's vision forward (every admitted prompt full of image at most)
  int64_t vision_patches = 0;
  int64_t prefill_chunk = 0;   // tokens of one prefill forward
  int64_t longest_prompt = 0;  // the longest sequence attention sees within a prefill chunk
  bool cuda_graphs = true;
  // The time model's mean request.
  int64_t request_image_pixels = 0;
  int64_t request_image_patches = 0;
  int64_t prompt_tokens = 0;  // its image's tokens and kTextTokensPerPrompt
  int64_t new_tokens = 0;
  double decode_context = 0;  // mean tokens in the cache while it decodes
};

// Throws Error naming a bad field. `any_cuda`: whether the device list has a cuda entry (dtype auto).
Workload resolve_workload(const PlanRequest& request, const ModelParts& parts, const model::ProcessorConfig& image,
                          bool any_cuda);

}  // namespace qwenvl::runtime::placement
