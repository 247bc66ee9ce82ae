// Turning a step's logits into tokens, as transformers 5.17's generate() does: logits in fp32,
// the repetition penalty over every id of the sequence so far (prompt included, also when greedy),
// then — when sampling — temperature, top-k, top-p and min-p in that order, and a draw that depends
// on the row alone (so a request's tokens never depend on what shares its batch). One entry point
// for a batch of rows, pick_tokens(): on the CPU row by row with each sequence's own seeded torch
// generator (as transformers draws, so seeded CPU answers match it), on a GPU every row in one
// kernels::sample launch, whose draws come from a Philox stream keyed by (seed, step). Rows with a
// constraint (json_schema / choices) first have every id their grammar forbids set to -inf in the
// raw logits (their masks, token_masks.h), before any processor, so no setting can leave no token.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/token_masks.h"

namespace qwenvl::runtime {

// Fully resolved parameters of one sequence (request, else generation_config.json, else
// transformers' defaults).
struct SamplingConfig {
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;  // 0 disables
  double top_p = 1.0;
  std::optional<double> min_p;
  double repetition_penalty = 1.0;
  uint64_t seed = 0;
};

// One sequence's sampling state: its settings and the generator its CPU draws come from.
class SequenceSampler {
 public:
  explicit SequenceSampler(const SamplingConfig& config);
  const SamplingConfig& config() const { return config_; }
  // Processes one fp32 logits row [vocab] in place with the penalty over `seen` ids, then picks.
  int64_t pick(at::Tensor logits, const std::vector<int64_t>& seen);

 private:
  SamplingConfig config_;
  at::Generator generator_;
};

// One row of a batch to pick for.
struct SamplingRow {
  SequenceSampler* sampler = nullptr;
  const std::vector<int64_t>* seen = nullptr;  // the sequence's ids so far, prompt included
  uint64_t step = 0;                           // tokens it has generated before this one
};

// The next token of every row of `logits` (fp32 [rows, vocab], processed in place), int64 [rows] on
// the logits' device, after `masks` (the constrained rows', fill_token_masks) are applied. On a GPU
// nothing waits for the device: the ids may still be being computed.
at::Tensor pick_tokens(at::Tensor& logits, const std::vector<SamplingRow>& rows, const TokenMasks& masks = {});

}  // namespace qwenvl::runtime
