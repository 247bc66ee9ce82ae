// What the language model's attention needs to know about one packed step: where each sequence's
// new tokens sit in the batch, how long each sequence is in the cache, its block table and the
// cache slots the new tokens are written to (kernels/attention.h gives the layout). A mixed step
// packs fresh prompts and running sequences' next tokens into one forward, so that the decode rows
// share the prompts' weight reads instead of reading every weight again in a step of their own.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace qwenvl::nn {

struct AttentionBatch {
  enum class Kind {
    kPrefill,        // every sequence starts empty: attend among the new tokens (varlen, causal)
    kPrefixPrefill,  // some sequences continue a cached prefix: attend to the paged cache
    kDecode,         // one new token per sequence
    kMixed,          // the first prefill_rows rows are fresh prompts (as kPrefill), one row per running
                     // sequence follows (as kDecode)
  };
  Kind kind = Kind::kPrefill;
  at::Tensor cu_seqlens_q;  // int32 [S + 1]: new tokens of sequence s are rows [cu[s], cu[s+1])
  int64_t max_seqlen_q = 0;
  at::Tensor seq_lens;      // int32 [S]: tokens in the cache after this step
  int64_t max_seq_len = 0;
  at::Tensor block_tables;  // int32 [S, max_blocks]
  at::Tensor slot_mapping;  // int64 [T]: cache slot of each new token
  // kMixed: cu_seqlens_q and max_seqlen_q describe the prompts' rows [0, prefill_rows); seq_lens,
  // max_seq_len and block_tables the decode rows after them.
  int64_t prefill_rows = 0;
};

}  // namespace qwenvl::nn
