// The processors and the CPU draw, and pick_tokens() choosing the CPU path or kernels::sample.
#include "runtime/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "kernels/sampling.h"
#include "runtime/host_upload.h"

namespace qwenvl::runtime {

namespace {

constexpr float kFiltered = -std::numeric_limits<float>::infinity();

// Every row in one kernels::sample call where the logits are: the same processors as
// SequenceSampler; greedy rows give the same ids, sampled rows draw from a Philox stream keyed by
// (seed, step) instead of the CPU generator.
at::Tensor pick_on_device(at::Tensor& logits, const std::vector<SamplingRow>& rows) {
  std::vector<kernels::RowSampling> settings;
  std::vector<int64_t> ids, offsets{0};
  for (const SamplingRow& row : rows) {
    const SamplingConfig& c = row.sampler->config();
    kernels::RowSampling r;
    r.do_sample = c.do_sample;
    r.temperature = c.temperature;
    r.top_k = c.top_k;
    r.top_p = c.top_p;
    r.min_p = c.min_p.value_or(0.0);
    r.repetition_penalty = c.repetition_penalty;
    r.seed = c.seed;
    r.step = row.step;
    settings.push_back(r);
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

void apply_repetition_penalty(at::Tensor& logits, const std::vector<int64_t>& seen, double penalty) {
  if (penalty == 1.0 || seen.empty()) return;
  auto ids = at::empty({static_cast<int64_t>(seen.size())}, at::kLong);
  std::copy(seen.begin(), seen.end(), ids.data_ptr<int64_t>());
  ids = ids.to(logits.device());
  auto score = logits.gather(0, ids);
  score = at::where(score < 0, score * penalty, score / penalty);
  logits.scatter_(0, ids, score);
}

void apply_sampling_warpers(at::Tensor& logits, const SamplingConfig& c) {
  const int64_t vocab = logits.size(0);
  if (c.temperature != 1.0) logits.div_(c.temperature);
  if (c.top_k != 0) {
    const int64_t k = std::min(c.top_k, vocab);
    auto kth = std::get<0>(at::topk(logits, k)).select(0, k - 1);
    logits.masked_fill_(logits < kth, kFiltered);
  }
  if (c.top_p < 1.0) {
    auto [sorted, order] = at::sort(logits, /*dim=*/0, /*descending=*/false);
    auto cumulative = sorted.softmax(0).cumsum(0);
    auto remove_sorted = cumulative <= (1.0 - c.top_p);
    remove_sorted[-1] = false;  // keep at least one token
    auto remove = remove_sorted.scatter(0, order, remove_sorted);
    logits.masked_fill_(remove, kFiltered);
  }
  if (c.min_p) {
    auto probs = logits.softmax(0);
    auto remove = probs < (*c.min_p * probs.max());
    remove.index_put_({probs.argmax()}, false);
    logits.masked_fill_(remove, kFiltered);
  }
}

SequenceSampler::SequenceSampler(const SamplingConfig& config)
    : config_(config), generator_(at::make_generator<at::CPUGeneratorImpl>(config.seed)) {}

int64_t SequenceSampler::pick(at::Tensor logits, const std::vector<int64_t>& seen) {
  apply_repetition_penalty(logits, seen, config_.repetition_penalty);
  if (!config_.do_sample) return logits.argmax().item<int64_t>();  // first index on ties
  apply_sampling_warpers(logits, config_);
  auto probs = logits.softmax(0).cpu();
  return at::multinomial(probs, 1, /*replacement=*/false, generator_).item<int64_t>();
}

at::Tensor pick_tokens(at::Tensor& logits, const std::vector<SamplingRow>& rows) {
  return logits.is_cuda() ? pick_on_device(logits, rows) : pick_on_host(logits, rows);
}

}  // namespace qwenvl::runtime
