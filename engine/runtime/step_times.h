// The inference thread's decode steps timed by part (qwenvl::DecodeHostTimes): written by that
// thread, read by any through the engine's stats. Clock reads between the parts and relaxed atomic
// counters; nothing here waits for the device, so timing every step costs next to nothing.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "qwenvl/engine.h"

namespace qwenvl::runtime {

class StepTimes {
 public:
  enum Part { kMaskFill, kLaunch, kWait, kGrammarAccept, kTokens, kParts };

  // One step: lap(part) adds the time since the previous lap (or since the step began) to `part`.
  // The step is accounted when it ends, all its parts together, not while it runs; a steady step (no
  // prefill queued since the step before) also adds its whole time.
  class Step {
   public:
    Step(StepTimes& times, bool steady);
    ~Step();
    Step(const Step&) = delete;
    Step& operator=(const Step&) = delete;
    void lap(Part part);

   private:
    StepTimes& times_;
    const bool steady_;
    const std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_;
    std::array<int64_t, kParts> ns_{};
  };

  DecodeHostTimes read() const;

 private:
  std::array<std::atomic<int64_t>, kParts> ns_{};
  std::atomic<uint64_t> steps_{0};
  std::atomic<uint64_t> steady_steps_{0};
  std::atomic<int64_t> steady_ns_{0};
};

}  // namespace qwenvl::runtime
