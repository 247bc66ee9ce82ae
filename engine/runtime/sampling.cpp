// The CPU draw after the kernels' processors, and pick_tokens() choosing it or kernels::sample.
#include "runtime/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

#include "kernels/sampling.h"
#include "runtime/host_upload.h"

namespace qwenvl::runtime {

namespace {

// The kernels' settings of one row.
kernels::RowSampling row_settings(const SamplingConfig& c, uint64_t step) {
  kernels::RowSampling r;
  r.do_sample = c.do_sample;
  r.temperature = c.temperature;
  r.top_k = c.top_k;
  r.top_p = c.top_p;
  r.min_p = c.min_p.value_or(0.0);
  r.repetition_penalty = c.repetition_penalty;
  r.seed = c.seed;
  r.step = step;
  return r;
}

// Every row in one kernels::sample call where the logits are: the same processors as
// SequenceSampler; greedy rows give the same ids, sampled rows draw from a Philox stream keyed by
// (seed, step) instead of the CPU generator.
at::Tensor pick_on_device(at::Tensor& logits, const std::vector<SamplingRow>& rows) {
  std::vector<kernels::RowSampling> settings;
  std::vector<int64_t> ids, offsets{0};
  for (const SamplingRow& row : rows) {
    const SamplingConfig& c = row.sampler->config();
    settings.push_back(row_settings(c, row.step));
    if (c.repetition_penalty != 1.0) ids.insert(ids.end(), row.seen->begin(), row.seen->end());
    offsets.push_back(static_cast<int64_t>(ids.size()));
  }
  kernels::SeenIds seen;
  if (!ids.empty()) {  // queued copies: with overlap_decode the host must not wait for the queued step here
    seen.ids = upload(ids, at::kLong, logits.device());
    seen.offsets = upload(offsets, at::kLong, logits.device());
  }
  return kernels::sample(logits, settings, seen);
}

// Row by row in row order, each with its sequence's own generator.
at::Tensor pick_on_host(at::Tensor& logits, const std::vector<SamplingRow>& rows) {
  std::vector<int64_t> picked;
  for (size_t row = 0; row < rows.size(); ++row)
    picked.push_back(rows[row].sampler->pick(logits[static_cast<int64_t>(row)], *rows[row].seen));
  return at::tensor(picked, at::kLong);
}

}  // namespace

SequenceSampler::SequenceSampler(const SamplingConfig& config)
    : config_(config), generator_(at::make_generator<at::CPUGeneratorImpl>(config.seed)) {}

int64_t SequenceSampler::pick(at::Tensor logits, const std::vector<int64_t>& seen) {
  at::Tensor seen_ids;
  if (config_.repetition_penalty != 1.0 && !seen.empty()) seen_ids = upload(seen, at::kLong, logits.device());
  // at::sort's order of ties, as transformers' top-p gets it: the same row, the same draw.
  kernels::process_logits(logits, row_settings(config_, 0), seen_ids, kernels::TopPTies::kAsTorchSort);
  if (!config_.do_sample) return logits.argmax().item<int64_t>();  // first index on ties
  auto probs = logits.softmax(0).cpu();
  return at::multinomial(probs, 1, /*replacement=*/false, generator_).item<int64_t>();
}

at::Tensor pick_tokens(at::Tensor& logits, const std::vector<SamplingRow>& rows, const TokenMasks& masks) {
  apply_token_masks(logits, masks);
  return logits.is_cuda() ? pick_on_device(logits, rows) : pick_on_host(logits, rows);
}

}  // namespace qwenvl::runtime
