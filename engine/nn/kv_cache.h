// The paged KV cache's storage: per layer, K and V in fixed-size blocks (the layout of
// kernels/attention.h), which the language model writes and attends to. Which blocks belong to
// which sequence is the runtime's business (runtime/block_allocator.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace qwenvl::nn {

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

}  // namespace qwenvl::nn
