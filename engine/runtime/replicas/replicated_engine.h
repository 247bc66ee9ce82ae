// Placement replicas: a whole one-device engine per entry of the device list, one Engine to its
// callers. Each request goes to the replica with the fewest requests in flight (queued or running;
// ties in turn; one whose device is lost only when all are), under an id of this engine's own, unique across the replicas; cancel() reaches the
// replica that holds it; stats() adds the replicas' counters up and lists each entry's predicted and
// measured peak. A plan of one device with a cap runs as one replica: the plan's KV cache keeps it
// within its cap.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "qwenvl/engine.h"
#include "qwenvl/placement.h"

namespace qwenvl::runtime {

class ReplicatedEngine final : public Engine {
 public:
  struct Replica {
    std::unique_ptr<Engine> engine;     // runs one device
    std::string device;                 // its entry's device
    int64_t predicted_peak_bytes = 0;   // the plan's total for the entry
  };

  ReplicatedEngine(EngineOptions options, std::vector<Replica> replicas);
  ~ReplicatedEngine() override;  // ends every request still pending (each once), then the replicas

  Submission submit(Request request) override;
  bool cancel(RequestId id) override;
  bool cancel_queued(RequestId id) override;  // the owner's, once its id there is known
  EngineStats stats() const override;
  const EngineOptions& options() const override { return options_; }

 private:
  // Where a request went; its replica's id is known once the replica's submit() has returned.
  struct Route {
    size_t replica = 0;
    std::optional<RequestId> inner;
    bool cancel_pending = false;  // cancelled before the replica's id was known
  };

  size_t least_loaded();  // under mutex_
  void ended(RequestId id, size_t replica, Status status);

  EngineOptions options_;
  // A replica's engine is moved out (under mutex_) as the destructor ends it: null from then on.
  std::vector<Replica> replicas_;

  mutable std::mutex mutex_;
  std::condition_variable submits_done_;
  bool stopping_ = false;
  int submitting_ = 0;                 // submit() calls inside a replica's submit()
  RequestId next_id_ = 0;
  size_t next_turn_ = 0;               // where the least-loaded search starts (ties in turn)
  std::vector<size_t> in_flight_;      // per replica
  std::vector<uint64_t> handed_;       // per replica, since creation
  std::vector<bool> lost_;             // per replica: it has stopped (EngineStats::fault), seen as a request failed
  std::map<RequestId, Route> routes_;  // requests not yet ended
  EngineStats counts_;                 // submitted and how requests ended, as this engine saw them
};

// One-device engines made by `create_one`, one per entry of `plan` (its replicas, or its one
// device), each with replica_options(); the first that fails to load fails the whole.
std::unique_ptr<Engine> create_replicated_engine(
    const EngineOptions& options, const Plan& plan,
    const std::function<std::unique_ptr<Engine>(const EngineOptions&)>& create_one);

}  // namespace qwenvl::runtime
