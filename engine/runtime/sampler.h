// Turning a step's logits into tokens, as transformers 5.17's generate() does: logits in fp32,
// the repetition penalty over every id of the sequence so far (prompt included, also when greedy),
// then — when sampling — temperature, top-k, top-p and min-p in that order, and a draw from the
// request's own seeded generator (so a request's tokens never depend on what shares its batch).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include <cstdint>
#include <optional>
#include <vector>

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

// Applies the processors to a logits row exactly as the reference does (exposed for tests).
void apply_repetition_penalty(at::Tensor& logits, const std::vector<int64_t>& seen, double penalty);
void apply_sampling_warpers(at::Tensor& logits, const SamplingConfig& config);

}  // namespace qwenvl::runtime
