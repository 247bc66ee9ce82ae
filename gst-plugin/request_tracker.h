// The element's side of its requests: what it has in flight, the answers that came back and wait
// for the next outgoing buffer, and the counters of the stats property. Engine callbacks reach the
// element only through this object (held by shared_ptr from each callback), so an element that
// stops — or an engine shared with other elements that outlives it — never calls into a
// finalized element.
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "qwenvl/engine.h"

namespace qwenvl::gst {

// What the element knows about a request besides what the engine returns.
struct Ticket {
  RequestId request_id = 0;  // the element's id of the request (see allocate_request_id); 0: submit() picks one
  std::string prompt;
  std::string stream_id;
  GstClockTime pts = GST_CLOCK_TIME_NONE;
  bool emit_partial = false;
  // A clip: the pts of its first and last frame, and how many frames it has (0: a single frame).
  GstClockTime window_start = GST_CLOCK_TIME_NONE, window_end = GST_CLOCK_TIME_NONE;
  unsigned clip_frames = 0;
  // roi mode: the box asked about (has_roi false for whole frames).
  bool has_roi = false;
  gint roi_id = 0;
  std::string roi_type;
  int roi_x = 0, roi_y = 0, roi_width = 0, roi_height = 0;
  bool remember = false;  // the answer joins the stream's history (history-size)
  bool json_answer = false;  // asked with a json-schema: the answer is delivered parsed too
};

// A new element request id: process-wide, so that ids never repeat across elements. The element
// hands these out (the `ask` signal returns one before its frame arrives); the engine's own ids stay
// inside the tracker.
RequestId allocate_request_id();

struct Answer {
  Result result;
  Ticket ticket;
};

struct TrackerStats {
  uint64_t asked = 0, answered = 0, dropped = 0, failed = 0, cancelled = 0;
  uint64_t skipped_unchanged = 0;  // due frames not asked: no change since the last asked (change-threshold)
  uint64_t latency_mean_ns = 0, latency_p99_ns = 0, latency_max_ns = 0, ttft_mean_ns = 0, ttft_p99_ns = 0;
  size_t in_flight = 0;
};

class RequestTracker : public std::enable_shared_from_this<RequestTracker> {
 public:
  // `element` receives qwenvl-partial messages until detach().
  explicit RequestTracker(GstElement* element);

  // Submits `request` (the engine copies its frames) and returns the engine's id, for wait_for();
  // 0 when submit() threw. Answers carry ticket.request_id (allocated here when 0).
  RequestId submit(Engine& engine, Request request, Ticket ticket);
  // Cancels every request still in flight; returns how many were.
  size_t cancel_all(Engine& engine);
  // Cancels the oldest request that waits for admission, counted as dropped (drop-oldest); false
  // when every request in flight already runs (a running request is never cancelled here).
  bool cancel_oldest_queued(Engine& engine);
  // Requests in flight, those being dropped left out.
  size_t in_flight() const;

  // Waits until request `id` has ended, or until flushing; false when flushing stopped the wait.
  bool wait_for(RequestId id);
  // Waits until nothing is in flight, or until flushing; false when flushing stopped the wait.
  bool wait_all();
  // Waits (at most `timeout`) until every request has ended, flushing or not; false on timeout.
  bool wait_ended(std::chrono::milliseconds timeout);
  // Wakes waiters and makes waits return false while set.
  void set_flushing(bool flushing);

  // The answers (and failures) that came back since the last call, in completion order.
  std::vector<Answer> take_ready();
  // Drops the answers that came back and every answer still to come of the requests submitted so
  // far (flush, restart): none of them reaches take_ready() or posts a partial message; they end
  // counted as cancelled.
  void discard_ready();

  void count_dropped();
  void count_skipped_unchanged();
  TrackerStats stats() const;
  // stats().dropped without the latency percentiles (each drop message carries it; a camera faster
  // than the engine drops most frames).
  uint64_t dropped() const;

  // No partial message reaches the element once this returns.
  void detach();

 private:
  void on_complete(const Result& result, const Ticket& ticket, uint64_t generation);
  void on_partial(RequestId id, std::string_view text, const Ticket& ticket, uint64_t generation);

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  GstElement* element_;  // not owned; nullptr after detach()
  bool flushing_ = false;
  uint64_t generation_ = 0;  // discard_ready() moves on: requests of an older one are stale
  std::deque<RequestId> in_flight_ids_;  // submitted and not ended, oldest first
  std::set<RequestId> ended_early_;      // ended before submit() returned its id
  size_t in_flight_ = 0;
  std::set<RequestId> dropped_ids_;      // cancelled by drop-oldest: counted as dropped, not cancelled
  std::vector<Answer> ready_;
  TrackerStats counts_;
  std::deque<uint64_t> latencies_ns_, ttfts_ns_;  // the most recent answers, for mean and p99
};

}  // namespace qwenvl::gst
