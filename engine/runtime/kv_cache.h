// The paged KV cache: per layer, K and V in fixed-size blocks (the layout of kernels/attention.h),
// and the allocator that hands blocks to sequences. A sequence's blocks need not be contiguous;
// freed blocks are reused.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace qwenvl::runtime {

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 64;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  // Bytes of K and V for one token over all layers.
  int64_t bytes_per_token(at::ScalarType dtype) const;
};

class KvCache {
 public:
  KvCache(const KvCacheShape& shape, at::ScalarType dtype, at::Device device);

  const KvCacheShape& shape() const { return shape_; }
  at::Tensor& k(int64_t layer) { return k_[layer]; }
  at::Tensor& v(int64_t layer) { return v_[layer]; }

 private:
  KvCacheShape shape_;
  std::vector<at::Tensor> k_, v_;  // [num_blocks, block_size, num_kv_heads, head_dim] each
};

// Free-list allocator over the cache's block ids.
class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t num_blocks);
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_blocks() const { return num_blocks_; }
  // Takes n blocks; returns false (taking none) when fewer are free.
  bool allocate(int64_t n, std::vector<int32_t>& out);
  void release(const std::vector<int32_t>& blocks);

 private:
  int64_t num_blocks_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
};

}  // namespace qwenvl::runtime
