// One decode step on the host, before it becomes tensors: the token each sequence appends, where
// it goes in the paged cache and what it attends to. The eager path and the graph path
// (runtime/decode_graphs.h) both start from it.
#pragma once

#include <cstdint>
#include <vector>

namespace qwenvl::runtime {

struct DecodeStep {
  int64_t sequences = 0;
  std::vector<int64_t> ids;           // [S] the tokens appended
  std::vector<int64_t> positions;     // [3, S] their M-RoPE positions, axis-major
  std::vector<int64_t> slot_mapping;  // [S] the cache slot each token's K/V is written to
  std::vector<int32_t> seq_lens;      // [S] tokens in the cache after the step
  int64_t table_width = 0;            // blocks per row of block_tables
  std::vector<int32_t> block_tables;  // [S, table_width], rows padded with block 0
  int64_t max_seq_len = 0;
};

}  // namespace qwenvl::runtime
