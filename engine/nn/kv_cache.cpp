#include "nn/kv_cache.h"

#include <string>

#include "qwenvl/error.h"

namespace qwenvl::nn {

int64_t KvCacheShape::bytes_per_token(at::ScalarType dtype) const {
  return 2 * num_layers * num_kv_heads * head_dim * static_cast<int64_t>(at::elementSize(dtype));
}

KvCache::KvCache(const KvCacheShape& shape, at::ScalarType dtype, at::Device device) : shape_(shape) {
  if (shape.block_size <= 0 || shape.block_size % 16 != 0)
    throw Error("KV cache: block_size " + std::to_string(shape.block_size) + " is not a positive multiple of 16");
  auto options = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    k_.push_back(at::zeros({shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim}, options));
    v_.push_back(at::zeros({shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim}, options));
  }
}

}  // namespace qwenvl::nn
