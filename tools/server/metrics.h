// GET /metrics: the server's counters and the engine's EngineStats in Prometheus' text exposition
// format (version 0.0.4). Thread-safe: requests end on the engine's thread, scrapes come on HTTP ones.
//
//   qwenvl_requests_total{outcome}             answered, cancelled (a client gone), expired, failed,
//                                              rejected (refused before the engine: 4xx)
//   qwenvl_prompt_tokens_total, qwenvl_generated_tokens_total
//   qwenvl_time_to_first_token_seconds         histogram, answered requests
//   qwenvl_request_latency_seconds             histogram, answered requests (submit to the last token)
//   qwenvl_http_requests_in_flight             chat completions being answered or streamed
//   qwenvl_queue_depth, qwenvl_running_sequences, qwenvl_kv_blocks_used, qwenvl_kv_blocks_total,
//   qwenvl_device_memory_peak_bytes{device}, qwenvl_engine_forwards_total{phase} (from EngineStats)
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::server {

// A cumulative histogram with fixed upper bounds, as Prometheus reads them.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // The _bucket (le="...", then "+Inf"), _sum and _count lines of `name`.
  void write(const std::string& name, std::string& out) const;

 private:
  std::vector<double> upper_bounds_;
  std::vector<uint64_t> counts_;  // one per bound, then +Inf; not yet cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  // A request refused before it reached the engine (bad request, wrong key, unknown model, ...).
  void rejected();
  // A request the engine ended, whatever its status.
  void ended(const Result& result);
  void in_flight(int delta);

  // The exposition text: our counters, then the engine's `stats` for `device`.
  std::string render(const EngineStats& stats, const std::string& device) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> outcomes_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  int64_t in_flight_ = 0;
  Histogram ttft_, latency_;
};

}  // namespace qwenvl::server
