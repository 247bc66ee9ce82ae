#include "runtime/step_times.h"

namespace qwenvl::runtime {

StepTimes::Step::Step(StepTimes& times) : times_(times), last_(std::chrono::steady_clock::now()) {
  times_.steps_.fetch_add(1, std::memory_order_relaxed);
}

void StepTimes::Step::lap(Part part) {
  const auto now = std::chrono::steady_clock::now();
  times_.ns_[part].fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count(),
                             std::memory_order_relaxed);
  last_ = now;
}

DecodeHostTimes StepTimes::read() const {
  const auto ms = [&](Part part) { return static_cast<double>(ns_[part].load(std::memory_order_relaxed)) / 1e6; };
  DecodeHostTimes t;
  t.mask_fill_ms = ms(kMaskFill);
  t.launch_ms = ms(kLaunch);
  t.wait_ms = ms(kWait);
  t.grammar_accept_ms = ms(kGrammarAccept);
  t.tokens_ms = ms(kTokens);
  t.steps = steps_.load(std::memory_order_relaxed);
  return t;
}

}  // namespace qwenvl::runtime
