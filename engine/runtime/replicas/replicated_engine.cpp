// Locks: mutex_ guards the routes, loads, counters and the replicas' engine pointers. It may be held
// while calling a replica's cancel() or stats() (they take only the replica's own locks and never
// call back), never while calling a replica's submit(), whose callbacks (which take mutex_) may run
// before it returns.
#include "runtime/replicas/replicated_engine.h"

#include <algorithm>
#include <utility>

#include "runtime/replicas/replica_options.h"

namespace qwenvl::runtime {

ReplicatedEngine::ReplicatedEngine(EngineOptions options, std::vector<Replica> replicas)
    : options_(std::move(options)),
      replicas_(std::move(replicas)),
      in_flight_(replicas_.size(), 0),
      handed_(replicas_.size(), 0),
      lost_(replicas_.size(), false) {
  if (replicas_.empty()) throw Error("replicas: no device to run on");
}

ReplicatedEngine::~ReplicatedEngine() {
  {
    // From here submit() ends requests at once; those inside a replica's submit() finish first.
    std::unique_lock<std::mutex> lock(mutex_);
    stopping_ = true;
    submits_done_.wait(lock, [&] { return submitting_ == 0; });
  }
  for (Replica& replica : replicas_) {
    std::unique_ptr<Engine> engine;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      engine = std::move(replica.engine);
    }
    engine.reset();  // cancels its pending requests; their callbacks come through ended()
  }
}

size_t ReplicatedEngine::least_loaded() {
  const size_t n = replicas_.size();
  size_t best = next_turn_ % n;
  // A replica that has stopped (EngineStats::fault) fails at once, so it would look the least
  // loaded: it gets requests only when every replica has stopped.
  const auto better = [&](size_t i) {
    if (lost_[i] != lost_[best]) return !lost_[i];
    return in_flight_[i] < in_flight_[best];
  };
  for (size_t k = 1; k < n; ++k) {
    const size_t i = (next_turn_ + k) % n;
    if (better(i)) best = i;
  }
  next_turn_ = best + 1;
  return best;
}

void ReplicatedEngine::ended(RequestId id, size_t replica, Status status) {
  std::lock_guard<std::mutex> lock(mutex_);
  routes_.erase(id);
  --in_flight_[replica];
  if (status == Status::kFailed && !lost_[replica] && replicas_[replica].engine != nullptr)
    lost_[replica] = !replicas_[replica].engine->stats().fault.empty();
  switch (status) {
    case Status::kAnswered: ++counts_.answered; break;
    case Status::kCancelled: ++counts_.cancelled; break;
    case Status::kExpired: ++counts_.expired; break;
    case Status::kFailed: ++counts_.failed; break;
  }
}

Submission ReplicatedEngine::submit(Request request) {
  auto promise = std::make_shared<std::promise<Result>>();
  Submission out;
  out.result = promise->get_future();
  size_t replica = 0;
  bool refuse = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out.id = ++next_id_;
    ++counts_.submitted;
    if (stopping_) {
      refuse = true;
      ++counts_.cancelled;
    } else {
      replica = least_loaded();
      ++in_flight_[replica];
      ++handed_[replica];
      routes_[out.id] = Route{replica, std::nullopt, false};
      ++submitting_;
    }
  }
  if (refuse) {
    Result r;
    r.id = out.id;
    r.status = Status::kCancelled;
    r.finish_reason = "cancelled";
    r.error = "the engine is shutting down";
    r.stream_id = request.stream_id;
    if (request.on_complete) {
      try {
        request.on_complete(r);
      } catch (...) {
        // As in every engine: a throwing callback must not keep the future from its result.
      }
    }
    promise->set_value(std::move(r));
    return out;
  }

  // The replica's ids are its own: callbacks and the future carry this engine's.
  const RequestId id = out.id;
  request.on_complete = [this, id, replica, promise, user = std::move(request.on_complete)](const Result& inner) {
    Result r = inner;
    r.id = id;
    ended(id, replica, r.status);
    if (user) {
      try {
        user(r);
      } catch (...) {
      }
    }
    promise->set_value(std::move(r));
  };
  if (request.on_partial)
    request.on_partial = [id, user = std::move(request.on_partial)](RequestId, std::string_view text) {
      user(id, text);
    };
  // Not destroyed meanwhile: the destructor waits for submitting_ to fall to 0.
  Engine& engine = *replicas_[replica].engine;
  const RequestId inner = engine.submit(std::move(request)).id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = routes_.find(id);
    if (it != routes_.end()) {  // not ended already
      it->second.inner = inner;
      if (it->second.cancel_pending) engine.cancel(inner);
    }
    if (--submitting_ == 0) submits_done_.notify_all();
  }
  return out;
}

bool ReplicatedEngine::cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = routes_.find(id);
  if (it == routes_.end()) return false;
  Route& route = it->second;
  if (!route.inner) {  // its replica's submit() is under way: cancelled as it returns
    route.cancel_pending = true;
    return true;
  }
  Engine* engine = replicas_[route.replica].engine.get();
  if (engine == nullptr) return true;  // its replica is shutting down, which cancels it
  return engine->cancel(*route.inner);
}

bool ReplicatedEngine::cancel_queued(RequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = routes_.find(id);
  if (it == routes_.end() || !it->second.inner) return false;  // unknown, or its replica's submit() is under way
  Engine* engine = replicas_[it->second.replica].engine.get();
  return engine != nullptr && engine->cancel_queued(*it->second.inner);
}

EngineStats ReplicatedEngine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  EngineStats s;
  s.submitted = counts_.submitted;
  s.answered = counts_.answered;
  s.cancelled = counts_.cancelled;
  s.expired = counts_.expired;
  s.failed = counts_.failed;
  s.decode_graphs = true;
  std::map<std::string, int64_t> peak_by_device;  // entries sharing a card share its counter
  for (size_t i = 0; i < replicas_.size(); ++i) {
    const Replica& replica = replicas_[i];
    DeviceStats d;
    d.device = replica.device;
    d.replica = static_cast<int>(i);
    d.predicted_peak_bytes = replica.predicted_peak_bytes;
    d.requests = handed_[i];
    if (replica.engine != nullptr) {
      const EngineStats r = replica.engine->stats();
      s.vision_forwards += r.vision_forwards;
      s.prefill_forwards += r.prefill_forwards;
      s.decode_forwards += r.decode_forwards;
      s.decode_rows += r.decode_rows;
      s.mixed_forwards += r.mixed_forwards;
      s.queued += r.queued;
      s.running += r.running;
      s.kv_blocks_total += r.kv_blocks_total;
      s.kv_blocks_used += r.kv_blocks_used;
      s.split_prefills += r.split_prefills;
      s.decode_graphs = s.decode_graphs && r.decode_graphs;
      s.vision_ms += r.vision_ms;
      s.prefill_ms += r.prefill_ms;
      s.decode_ms += r.decode_ms;
      s.decode_host += r.decode_host;
      d.measured_peak_bytes = r.peak_device_memory_bytes;
    } else {
      s.decode_graphs = false;
    }
    int64_t& peak = peak_by_device[d.device];
    peak = std::max(peak, d.measured_peak_bytes);
    s.devices.push_back(std::move(d));
  }
  for (const auto& [device, peak] : peak_by_device) s.peak_device_memory_bytes += peak;
  if (std::all_of(lost_.begin(), lost_.end(), [](bool lost) { return lost; }))
    for (size_t i = 0; i < replicas_.size(); ++i)
      if (replicas_[i].engine != nullptr) {
        const std::string fault = replicas_[i].engine->stats().fault;
        s.fault += (s.fault.empty() ? "" : "; ") + ("replica " + std::to_string(i) + ": " + fault);
      }
  return s;
}

std::unique_ptr<Engine> create_replicated_engine(
    const EngineOptions& options, const Plan& plan,
    const std::function<std::unique_ptr<Engine>(const EngineOptions&)>& create_one) {
  const std::vector<EngineOptions> each = replica_options(options, plan);
  std::vector<ReplicatedEngine::Replica> replicas;
  for (size_t i = 0; i < each.size(); ++i)
    replicas.push_back({create_one(each[i]), plan.devices[i].device, plan.devices[i].memory.total()});
  return std::make_unique<ReplicatedEngine>(options, std::move(replicas));
}

}  // namespace qwenvl::runtime
