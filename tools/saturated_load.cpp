// The saturated load of saturated_load.h: completions arrive on the engine's thread through
// on_complete; this thread resubmits, so the engine's thread never calls back into the engine.
#include "saturated_load.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "qwenvl/error.h"

namespace qwenvl::tools {

namespace {

using Clock = std::chrono::steady_clock;

struct Ended {
  Clock::time_point submitted, ended;
  Status status = Status::kFailed;
  size_t tokens = 0;
  std::string error;
};

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

SaturatedResult run_saturated(Engine& engine, const std::function<Request()>& make_request,
                              const SaturatedOptions& options) {
  std::mutex mutex;
  std::condition_variable arrived;
  std::deque<Ended> ended;  // guarded by mutex

  SaturatedResult result;
  result.in_flight = options.in_flight;
  result.duration_s = options.duration_s;
  const auto submit_one = [&] {
    Request request = make_request();
    const Clock::time_point submitted = Clock::now();
    request.on_complete = [&, submitted](const Result& r) {
      std::lock_guard<std::mutex> lock(mutex);
      ended.push_back({submitted, Clock::now(), r.status, r.token_ids.size(), r.error});
      arrived.notify_one();
    };
    engine.submit(std::move(request));  // the future is not needed: on_complete reports
    ++result.submitted;
  };

  const Clock::time_point start = Clock::now();
  const auto seconds = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  const Clock::time_point window_start = start + seconds(options.warmup_s);
  const Clock::time_point window_end = window_start + seconds(options.duration_s);
  EngineStats before, after;
  bool started = false, finished = false;
  std::string failure;
  std::vector<double> latencies_ms;

  int outstanding = 0;
  for (; outstanding < options.in_flight; ++outstanding) submit_one();
  while (outstanding > 0) {
    std::deque<Ended> batch;
    {
      std::unique_lock<std::mutex> lock(mutex);
      const Clock::time_point next_edge = !started ? window_start : window_end;
      if (finished) arrived.wait(lock, [&] { return !ended.empty(); });
      else arrived.wait_until(lock, next_edge, [&] { return !ended.empty(); });
      batch.swap(ended);
    }
    const Clock::time_point now = Clock::now();
    if (!started && now >= window_start) {
      before = engine.stats();
      started = true;
    }
    if (started && !finished && now >= window_end) {
      after = engine.stats();
      finished = true;
    }
    for (const Ended& e : batch) {
      --outstanding;
      if (e.status != Status::kAnswered && failure.empty())
        failure = std::string("request ") + status_name(e.status) + ": " + e.error;
      else if (e.tokens != static_cast<size_t>(options.new_tokens) && failure.empty())
        failure = "request generated " + std::to_string(e.tokens) + " tokens, not " + std::to_string(options.new_tokens);
      if (e.ended >= window_start && e.ended < window_end)
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(e.ended - e.submitted).count());
      // Keep the load up until the window closes (a failure stops it: drain, then report).
      if (!finished && failure.empty()) {
        submit_one();
        ++outstanding;
      }
    }
  }
  if (!failure.empty()) throw Error(failure);
  if (!finished) after = engine.stats();  // unreachable unless the window had no answers at all

  std::sort(latencies_ms.begin(), latencies_ms.end());
  result.answers = latencies_ms.size();
  result.frames_per_s = options.duration_s > 0 ? static_cast<double>(result.answers) / options.duration_s : 0;
  result.latency_p50_ms = percentile(latencies_ms, 0.50);
  result.latency_p99_ms = percentile(latencies_ms, 0.99);
  result.decode_steps = after.decode_forwards - before.decode_forwards;
  result.prefill_forwards = after.prefill_forwards - before.prefill_forwards;
  result.mixed_steps = after.mixed_forwards - before.mixed_forwards;
  result.vision_forwards = after.vision_forwards - before.vision_forwards;
  result.mean_decode_batch =
      result.decode_steps ? static_cast<double>(after.decode_rows - before.decode_rows) / result.decode_steps : 0;
  result.vision_ms = after.vision_ms - before.vision_ms;
  result.prefill_ms = after.prefill_ms - before.prefill_ms;
  result.decode_ms = after.decode_ms - before.decode_ms;
  result.decode_host = after.decode_host - before.decode_host;
  return result;
}

}  // namespace qwenvl::tools
