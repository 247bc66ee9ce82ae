// qwenvl-server's /metrics text (tools/server/metrics.cpp): Prometheus' exposition format, counts that
// move with the requests, cumulative histogram buckets, the engine's stats as gauges.
#include <gtest/gtest.h>

#include <string>

#include "metrics.h"

namespace {

using qwenvl::server::Histogram;
using qwenvl::server::Metrics;

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Histogram, BucketsAreCumulativeWithInfSumAndCount) {
  Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in it (le)
  h.observe(0.5);
  h.observe(7);
  std::string out;
  h.write("x", out);
  EXPECT_EQ(out,
            "x_bucket{le=\"0.1\"} 2\n"
            "x_bucket{le=\"1\"} 3\n"
            "x_bucket{le=\"+Inf\"} 4\n"
            "x_sum 7.65\n"
            "x_count 4\n");
}

TEST(Metrics, CountsOutcomesTokensAndEngineStats) {
  Metrics m;
  qwenvl::Result ok;
  ok.status = qwenvl::Status::kAnswered;
  ok.token_ids = {1, 2, 3};
  ok.prompt_tokens = 10;
  ok.ttft_ms = 20;
  ok.total_ms = 300;
  m.ended(ok);
  qwenvl::Result gone;
  gone.status = qwenvl::Status::kCancelled;
  gone.token_ids = {4};
  gone.prompt_tokens = 10;
  m.ended(gone);
  m.rejected();
  m.rejected();
  m.in_flight(+1);
  qwenvl::EngineStats stats;
  stats.queued = 2;
  stats.running = 3;
  stats.kv_blocks_used = 5;
  stats.kv_blocks_total = 40;
  stats.decode_forwards = 9;
  const std::string text = m.render(stats, "cpu");
  for (const char* line :
       {"# TYPE qwenvl_requests_total counter", "qwenvl_requests_total{outcome=\"answered\"} 1",
        "qwenvl_requests_total{outcome=\"cancelled\"} 1", "qwenvl_requests_total{outcome=\"failed\"} 0",
        "qwenvl_requests_total{outcome=\"rejected\"} 2", "qwenvl_generated_tokens_total 4",
        "qwenvl_prompt_tokens_total 20", "qwenvl_time_to_first_token_seconds_bucket{le=\"0.025\"} 1",
        "qwenvl_time_to_first_token_seconds_count 1", "qwenvl_request_latency_seconds_bucket{le=\"0.25\"} 0",
        "qwenvl_request_latency_seconds_bucket{le=\"0.5\"} 1", "qwenvl_http_requests_in_flight 1",
        "qwenvl_queue_depth 2", "qwenvl_running_sequences 3", "qwenvl_kv_blocks_used 5", "qwenvl_kv_blocks_total 40",
        "qwenvl_device_memory_peak_bytes{device=\"cpu\"} 0", "qwenvl_engine_forwards_total{phase=\"decode\"} 9"})
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
}

}  // namespace
