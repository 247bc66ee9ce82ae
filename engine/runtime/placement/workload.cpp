#include "runtime/placement/workload.h"

#include <fmt/format.h>

#include <algorithm>

#include "qwenvl/error.h"

namespace qwenvl::runtime::placement {
namespace {

constexpr int kMaxBatch = 1 << 16;
constexpr int64_t kMaxContext = int64_t{1} << 24;

// The engine's dtype names (EngineOptions::dtype) and their element sizes.
void resolve_dtype(const std::string& name, bool any_cuda, Workload& w) {
  std::string dtype = name;
  if (dtype == "auto") dtype = any_cuda ? "bfloat16" : "float32";  // the engine's auto: bf16 on CUDA, fp32 on CPU
  if (dtype == "bf16") dtype = "bfloat16";
  if (dtype == "fp16") dtype = "float16";
  if (dtype == "fp32") dtype = "float32";
  if (dtype == "bfloat16" || dtype == "float16") {
    w.dtype_bytes = 2;
  } else if (dtype == "float32") {
    w.dtype_bytes = 4;
  } else {
    throw Error(fmt::format("unknown dtype '{}' (use auto, float32, bfloat16 or float16)", name));
  }
  w.dtype = dtype;
}

}  // namespace

Workload resolve_workload(const PlanRequest& r, const ModelParts& parts, const model::ProcessorConfig& image,
                          bool any_cuda) {
  Workload w;
  resolve_dtype(r.dtype, any_cuda, w);
  if (r.max_batch < 1) throw Error(fmt::format("max_batch is {}: it must be at least 1", r.max_batch));
  if (r.max_context < 2) throw Error(fmt::format("max_context is {}: it must be at least 2", r.max_context));
  // Past these the sizes below would overflow long before any device could hold them.
  if (r.max_batch > kMaxBatch) throw Error(fmt::format("max_batch is {}: at most {}", r.max_batch, kMaxBatch));
  if (r.max_context > kMaxContext)
    throw Error(fmt::format("max_context is {}: at most {}", r.max_context, kMaxContext));
  if (r.kv_block_size < 16 || r.kv_block_size % 16 != 0)
    throw Error(fmt::format("kv_block_size is {}: it must be a positive multiple of 16", r.kv_block_size));
  if (r.max_pixels < 0)
    throw Error(fmt::format("max_pixels is {}: it must be positive (0: the model's)", r.max_pixels));
  if (r.images_per_step < 0)
    throw Error(fmt::format("images_per_step is {}: it must be positive (0: max_batch)", r.images_per_step));
  if (r.prefill_chunk_tokens < 0)
    throw Error(
        fmt::format("prefill_chunk_tokens is {}: it must be positive (0: max_context)", r.prefill_chunk_tokens));
  if (r.image_pixels < 0)
    throw Error(fmt::format("image_pixels is {}: it must be positive (0: 448x448)", r.image_pixels));
  if (r.new_tokens < 1) throw Error(fmt::format("new_tokens is {}: it must be at least 1", r.new_tokens));

  w.max_batch = r.max_batch;
  w.max_context = r.max_context;
  w.block_size = r.kv_block_size;
  w.blocks_per_sequence = (w.max_context + w.block_size - 1) / w.block_size;
  w.kv_blocks = w.max_batch * w.blocks_per_sequence;

  // The processor resizes to a multiple of patch x merge on each side with at most max_pixels
  // (smart_resize), so an image has at most max_pixels / token_pixels tokens, and its prompt must fit.
  w.max_pixels = r.max_pixels > 0 ? r.max_pixels : image.max_pixels;
  w.image_tokens = std::clamp<int64_t>(w.max_pixels / parts.token_pixels, 1, w.max_context - 1);
  w.image_patches = w.image_tokens * parts.merge_unit;
  w.images_per_step = r.images_per_step > 0 ? r.images_per_step : r.max_batch;
  w.vision_tokens = std::min(w.images_per_step * w.image_tokens, w.max_batch * (w.max_context - 1));
  w.vision_patches = w.vision_tokens * parts.merge_unit;

  w.prefill_chunk =
      std::min(r.prefill_chunk_tokens > 0 ? r.prefill_chunk_tokens : w.max_context, w.max_batch * w.max_context);
  w.longest_prompt = std::min(w.prefill_chunk, w.max_context - 1);
  w.cuda_graphs = r.cuda_graphs;

  w.request_image_pixels = std::min(r.image_pixels > 0 ? r.image_pixels : kDefaultImagePixels, w.max_pixels);
  const int64_t request_image_tokens =
      std::clamp<int64_t>(w.request_image_pixels / parts.token_pixels, 1, w.image_tokens);
  w.request_image_patches = request_image_tokens * parts.merge_unit;
  w.prompt_tokens = std::min(request_image_tokens + kTextTokensPerPrompt, w.max_context - 1);
  w.new_tokens = std::min<int64_t>(r.new_tokens, w.max_context - w.prompt_tokens);
  w.decode_context = static_cast<double>(w.prompt_tokens) + static_cast<double>(w.new_tokens) / 2;
  return w;
}

}  // namespace qwenvl::runtime::placement
