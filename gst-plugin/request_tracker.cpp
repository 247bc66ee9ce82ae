#include "request_tracker.h"

#include <algorithm>
#include <atomic>
#include <numeric>

namespace qwenvl::gst {
namespace {

constexpr size_t kLatencyWindow = 1024;  // answers kept for the latency statistics

void push_window(std::deque<uint64_t>& window, uint64_t value) {
  window.push_back(value);
  if (window.size() > kLatencyWindow) window.pop_front();
}

uint64_t mean_of(const std::deque<uint64_t>& values) {
  if (values.empty()) return 0;
  return std::accumulate(values.begin(), values.end(), uint64_t{0}) / values.size();
}

uint64_t p99_of(const std::deque<uint64_t>& values) {
  if (values.empty()) return 0;
  std::vector<uint64_t> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  // Nearest rank: the smallest value that at least 99% of the values do not exceed.
  const size_t rank = (sorted.size() * 99 + 99) / 100;
  return sorted[std::max<size_t>(rank, 1) - 1];
}

uint64_t ms_to_ns(double ms) { return ms <= 0 ? 0 : static_cast<uint64_t>(ms * 1e6 + 0.5); }

}  // namespace

RequestId allocate_request_id() {
  static std::atomic<RequestId> next{1};
  return next.fetch_add(1);
}

RequestTracker::RequestTracker(GstElement* element) : element_(element) {}

RequestId RequestTracker::submit(Engine& engine, Request request, Ticket ticket) {
  if (ticket.request_id == 0) ticket.request_id = allocate_request_id();
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++in_flight_;
    ++counts_.asked;
    generation = generation_;
  }
  std::weak_ptr<RequestTracker> self = shared_from_this();
  request.on_complete = [self, ticket, generation](const Result& result) {
    if (auto tracker = self.lock()) tracker->on_complete(result, ticket, generation);
  };
  if (ticket.emit_partial)
    request.on_partial = [self, ticket, generation](RequestId id, std::string_view text) {
      if (auto tracker = self.lock()) tracker->on_partial(id, text, ticket, generation);
    };
  RequestId id = 0;
  try {
    id = engine.submit(std::move(request)).id;
  } catch (const std::exception&) {
    std::lock_guard<std::mutex> lock(mutex_);
    --in_flight_;
    ++counts_.failed;
    return 0;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  // The callback may already have run (a request that fails at once ends inside submit()).
  if (ended_early_.erase(id) == 0) in_flight_ids_.push_back(id);
  return id;
}

void RequestTracker::on_complete(const Result& result, const Ticket& ticket, uint64_t generation) {
  std::lock_guard<std::mutex> lock(mutex_);
  --in_flight_;
  // A request dropped by drop-oldest already left in_flight_ids_ and was counted as dropped.
  const bool dropped = dropped_ids_.erase(result.id) > 0;
  if (!dropped) {
    auto it = std::find(in_flight_ids_.begin(), in_flight_ids_.end(), result.id);
    if (it != in_flight_ids_.end()) in_flight_ids_.erase(it);
    else ended_early_.insert(result.id);
  }
  // Marked dropped but ended otherwise (it failed while being withdrawn): no drop.
  if (dropped && result.status != Status::kCancelled) --counts_.dropped;
  // A request of frames flushed away (cancelled then, but it may have finished first): its answer
  // would name frames that are gone, so it never reaches downstream.
  if (generation != generation_) {
    if (!dropped || result.status != Status::kCancelled) ++counts_.cancelled;
    changed_.notify_all();
    return;
  }
  switch (result.status) {
    case Status::kAnswered:
      ++counts_.answered;
      push_window(latencies_ns_, ms_to_ns(result.total_ms));
      push_window(ttfts_ns_, ms_to_ns(result.ttft_ms));
      counts_.latency_max_ns = std::max(counts_.latency_max_ns, ms_to_ns(result.total_ms));
      ready_.push_back(Answer{result, ticket});
      break;
    case Status::kCancelled:
      if (!dropped) ++counts_.cancelled;
      break;
    case Status::kExpired:
    case Status::kFailed:
      ++counts_.failed;
      ready_.push_back(Answer{result, ticket});
      break;
  }
  changed_.notify_all();
}

void RequestTracker::on_partial(RequestId, std::string_view text, const Ticket& ticket, uint64_t generation) {
  GstElement* element = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (element_ == nullptr || generation != generation_) return;
    element = GST_ELEMENT(gst_object_ref(element_));
  }
  // Posted outside the lock: a bus sync handler may call back into the element.
  const std::string piece(text);
  GstStructure* s = gst_structure_new("qwenvl-partial", "text", G_TYPE_STRING, piece.c_str(), "prompt", G_TYPE_STRING,
                                      ticket.prompt.c_str(), "stream-id", G_TYPE_STRING, ticket.stream_id.c_str(),
                                      "request-id", G_TYPE_UINT64, static_cast<guint64>(ticket.request_id), "pts", G_TYPE_UINT64,
                                      static_cast<guint64>(ticket.pts), nullptr);
  gst_element_post_message(element, gst_message_new_element(GST_OBJECT(element), s));
  gst_object_unref(element);
}

size_t RequestTracker::cancel_all(Engine& engine) {
  std::deque<RequestId> ids;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ids = in_flight_ids_;
  }
  for (RequestId id : ids) engine.cancel(id);
  return ids.size();
}

bool RequestTracker::cancel_oldest_queued(Engine& engine) {
  // Under our lock: cancel_queued() runs no callback, and callbacks take the engine's lock never
  // with ours held, so the order is safe; a request found running is left to run.
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = in_flight_ids_.begin(); it != in_flight_ids_.end(); ++it) {
    if (!engine.cancel_queued(*it)) continue;
    dropped_ids_.insert(*it);
    in_flight_ids_.erase(it);
    ++counts_.dropped;
    return true;
  }
  return false;
}

size_t RequestTracker::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_flight_ - dropped_ids_.size();  // those being dropped no longer count
}

bool RequestTracker::wait_for(RequestId id) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] {
    return flushing_ || (std::find(in_flight_ids_.begin(), in_flight_ids_.end(), id) == in_flight_ids_.end());
  });
  return !flushing_;
}

bool RequestTracker::wait_all() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return flushing_ || in_flight_ == 0; });
  return !flushing_;
}

bool RequestTracker::wait_ended(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
}

void RequestTracker::set_flushing(bool flushing) {
  std::lock_guard<std::mutex> lock(mutex_);
  flushing_ = flushing;
  changed_.notify_all();
}

std::vector<Answer> RequestTracker::take_ready() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Answer> out;
  out.swap(ready_);
  return out;
}

void RequestTracker::discard_ready() {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_.clear();
  ++generation_;
}

void RequestTracker::count_dropped() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_.dropped;
}

void RequestTracker::count_skipped_unchanged() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_.skipped_unchanged;
}

TrackerStats RequestTracker::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  TrackerStats s = counts_;
  s.latency_mean_ns = mean_of(latencies_ns_);
  s.latency_p99_ns = p99_of(latencies_ns_);
  s.ttft_mean_ns = mean_of(ttfts_ns_);
  s.ttft_p99_ns = p99_of(ttfts_ns_);
  s.in_flight = in_flight_ - dropped_ids_.size();
  return s;
}

uint64_t RequestTracker::dropped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_.dropped;
}

void RequestTracker::detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  element_ = nullptr;
  flushing_ = true;
  changed_.notify_all();
}

}  // namespace qwenvl::gst
