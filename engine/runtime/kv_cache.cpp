#include "runtime/kv_cache.h"

#include <string>

#include "qwenvl/error.h"

namespace qwenvl::runtime {

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

BlockAllocator::BlockAllocator(int64_t num_blocks) : num_blocks_(num_blocks) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

bool BlockAllocator::allocate(int64_t n, std::vector<int32_t>& out) {
  if (n > num_free()) return false;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void BlockAllocator::release(const std::vector<int32_t>& blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) free_.push_back(*it);
}

}  // namespace qwenvl::runtime
