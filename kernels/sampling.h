// Token selection for a batch of logits rows in one call, with transformers' logits processors:
// the repetition penalty over the row's seen ids, then greedy argmax (first index on ties) or
// temperature, top-k (keeps values >= the k-th largest), top-p (removes the ascending-sorted prefix
// whose cumulative probability is <= 1 - top_p, keeping at least one; tied values are removed
// lowest index first, as a stable sort orders them) and min-p (removes probabilities below
// min_p * the largest), and a draw. The draw is a function of the processed row, the row's seed
// and its step alone (Philox exponential race), so a row's token never depends on its batch.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace qwenvl::kernels {

struct RowSampling {
  bool do_sample = false;            // false: greedy
  double temperature = 1.0;          // logits / temperature (as fp32 division)
  int64_t top_k = 0;                 // 0 disables
  double top_p = 1.0;                // 1 disables
  double min_p = 0.0;                // 0 disables
  double repetition_penalty = 1.0;   // 1 disables; applied once per distinct seen id
  uint64_t seed = 0;
  uint64_t step = 0;
};

// Seen ids per row, int64 in [0, vocab), on the logits' device. Either CSR (ids [n], offsets
// [rows + 1]) or padded (ids [rows, L], lengths [rows]); leave the other form's tensor undefined.
struct SeenIds {
  at::Tensor ids;
  at::Tensor offsets;
  at::Tensor lengths;
};

// logits fp32 [rows, vocab], contiguous, processed in place as the reference processes them
// (penalised, divided, filtered entries set to -inf). Returns the chosen ids, int64 [rows], on the
// logits' device.
at::Tensor sample(at::Tensor& logits, const std::vector<RowSampling>& rows, const SeenIds& seen);

// How top-p orders tied values before it removes the ascending prefix. sample() removes ties lowest
// index first (a stable sort, as its CUDA kernel does); at::sort's default order is what
// transformers gets, for a caller that must draw as transformers does from the same processed row.
enum class TopPTies { kLowestIndexFirst, kAsTorchSort };

// The processors alone, in place on one fp32 logits row [vocab] (libtorch ops, on any device): the
// penalty over `seen_ids` (int64, the row's device; duplicates allowed), then, when c.do_sample,
// temperature, top-k, top-p and min-p. For callers that draw themselves; sample() runs the same.
void process_logits(at::Tensor& row, const RowSampling& c, const at::Tensor& seen_ids, TopPTies ties);

}  // namespace qwenvl::kernels
