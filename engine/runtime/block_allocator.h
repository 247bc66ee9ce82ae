// The allocator that hands the paged KV cache's blocks to sequences: a free list over the block ids.
// A sequence's blocks need not be contiguous; freed blocks are reused.
#pragma once

#include <cstdint>
#include <vector>

namespace qwenvl::runtime {

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
