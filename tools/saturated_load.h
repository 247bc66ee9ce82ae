// Saturated load for qwenvl-bench: N requests kept in flight on one engine, each resubmitted as it
// ends, and the steady state measured in a window after a warm-up (answers per second, latency
// percentiles, the decode batch and phase times of the window). The number a camera deployment
// gets, where the one-batch measure leaves the decode steps' weight reads unshared.
#pragma once

#include <cstdint>
#include <functional>

#include "qwenvl/engine.h"

namespace qwenvl::tools {

struct SaturatedOptions {
  int in_flight = 64;       // requests kept submitted at once
  double warmup_s = 5;      // answers ending before this are not counted
  double duration_s = 30;   // the measured window after the warm-up
  int new_tokens = 32;      // every answer must have exactly this many tokens
};

struct SaturatedResult {
  int in_flight = 0;
  double duration_s = 0;
  uint64_t answers = 0;            // answers that ended inside the window
  uint64_t submitted = 0;          // requests submitted in all (warm-up and drain included)
  double frames_per_s = 0;         // answers / duration_s
  double latency_p50_ms = 0, latency_p99_ms = 0;  // submit to end, of the window's answers
  uint64_t decode_steps = 0;       // decode forwards in the window
  uint64_t prefill_forwards = 0;   // prefill forwards in the window (each admits one group)
  uint64_t mixed_steps = 0;        // of them, those inside a decode step (EngineStats::mixed_forwards)
  uint64_t vision_forwards = 0;    // vision tower forwards in the window (answers / this: frames a forward)
  // The mean rows of a decode step in the window (EngineStats::decode_rows / decode_forwards).
  double mean_decode_batch = 0;
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;  // in the window (EngineOptions::time_phases)
  DecodeHostTimes decode_host;  // the inference thread's decode steps by part, in the window
};

// Runs the load on `engine` (max_batch should be in_flight) with the requests `make_request`
// builds (their on_complete is set here), then waits for the last ones to end. Throws
// qwenvl::Error, after the drain, if a request was not answered with exactly new_tokens tokens.
SaturatedResult run_saturated(Engine& engine, const std::function<Request()>& make_request,
                              const SaturatedOptions& options);

}  // namespace qwenvl::tools
