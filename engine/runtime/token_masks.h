// The token masks of one step's constrained rows (json_schema / choices): filled on the host, where
// xgrammar's matchers live, row-parallel on libtorch's inter-op pool (parallel_rows.h: a row costs
// tens of µs over 152k ids; serially, 64 rows were 2.9 ms of a 10 ms 7B step on an H100), into one
// block that also carries the rows' indices; on a GPU the block is pinned and goes over with one
// queued copy, and kernels::apply_token_bitmask applies every row in one launch.
//
// Where the fill sits in a step (Scheduler::step): the masks are filled for logits the device may
// still be computing. Nothing before the sampling kernel waits for the device, so the host fills step
// N's masks while the device runs step N's forward (its matchers accepted step N-1's tokens when the
// host read them; with overlap_decode that read does not wait for step N's forward either). Only the
// copy and the one kernel sit on the device's path, between the forward and the sampling kernel.
// The matchers take a step's tokens row-parallel too (accept_constrained_tokens).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "structured/token_constraint.h"

namespace qwenvl::runtime {

struct TokenMasks {
  // int32 [rows * words + rows] on the host (pinned when `pinned`): each constrained row's mask,
  // then the logits row each mask applies to.
  at::Tensor block;
  int64_t rows = 0;
  int64_t words = 0;
};

// The masks of the logits rows whose constraint is not null (`constraints[i]` for row i), for
// logits `vocab` ids wide; an empty block (rows 0) when none is.
TokenMasks fill_token_masks(const std::vector<structured::TokenConstraint*>& constraints, int64_t vocab, bool pinned);

// Sets every id the masks forbid to -inf in `logits` (fp32 [rows, vocab], on any device): one
// non-blocking copy of the block to the logits' device, one kernel.
void apply_token_masks(at::Tensor& logits, const TokenMasks& masks);

// Each constrained row's grammar takes its row's token (`tokens[i]` for `constraints[i]`; rows whose
// constraint is null are skipped), row-parallel. The mask allowed only what the grammar accepts, so
// a refusal is a bug, not the model's doing: it throws, naming the token.
void accept_constrained_tokens(const std::vector<structured::TokenConstraint*>& constraints,
                               const std::vector<int64_t>& tokens);

}  // namespace qwenvl::runtime
