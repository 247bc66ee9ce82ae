#include "runtime/step_times.h"

namespace qwenvl::runtime {

namespace {
int64_t nanoseconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}
}  // namespace

StepTimes::Step::Step(StepTimes& times, bool steady)
    : times_(times), steady_(steady), start_(std::chrono::steady_clock::now()), last_(start_) {}

StepTimes::Step::~Step() {
  for (int part = 0; part < kParts; ++part) times_.ns_[part].fetch_add(ns_[part], std::memory_order_relaxed);
  times_.steps_.fetch_add(1, std::memory_order_relaxed);
  if (!steady_) return;
  times_.steady_steps_.fetch_add(1, std::memory_order_relaxed);
  times_.steady_ns_.fetch_add(nanoseconds(last_ - start_), std::memory_order_relaxed);
}

void StepTimes::Step::lap(Part part) {
  const auto now = std::chrono::steady_clock::now();
  ns_[part] += nanoseconds(now - last_);
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
  t.steady_steps = steady_steps_.load(std::memory_order_relaxed);
  t.steady_ms = static_cast<double>(steady_ns_.load(std::memory_order_relaxed)) / 1e6;
  return t;
}

}  // namespace qwenvl::runtime
