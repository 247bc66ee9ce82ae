#include "runtime/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

namespace qwenvl::runtime {

namespace {
constexpr float kFiltered = -std::numeric_limits<float>::infinity();
}

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

}  // namespace qwenvl::runtime
