// ReplicatedEngine's promises over fake one-device engines (no model): each request to the replica
// with the fewest in flight (ties in turn), ids unique across replicas in callbacks and futures,
// cancel() reaching the replica that holds the request, stats added up with each entry's peaks, and
// every request ending exactly once, also when a replica ends it inside submit() and when the
// engine is destroyed with requests pending.
#include "runtime/replicas/replicated_engine.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace qwenvl::runtime {
namespace {

// A one-device engine that keeps what it is given until told to answer; like the real engine it
// numbers requests from 1, ends them on its own schedule (cancel() only marks) and cancels what is
// pending when destroyed.
class FakeEngine final : public Engine {
 public:
  ~FakeEngine() override {
    std::vector<RequestId> ids;
    for (auto& [id, p] : pending_) ids.push_back(id);
    for (RequestId id : ids) end(id, Status::kCancelled);
  }
  Submission submit(Request request) override {
    Submission out;
    out.id = ++next_id_;
    if (fail_at_once) {
      Result r;
      r.id = out.id;
      r.status = Status::kFailed;
      r.error = "refused at once";
      if (request.on_complete) request.on_complete(r);
      return out;
    }
    pending_[out.id] = std::move(request);
    return out;
  }
  bool cancel(RequestId id) override {
    if (!pending_.count(id)) return false;
    cancelled_.insert(id);
    return true;
  }
  bool cancel_queued(RequestId) override { return false; }
  EngineStats stats() const override {
    EngineStats s;
    s.queued = pending_.size();
    s.decode_forwards = 10;
    s.kv_blocks_total = 100;
    s.peak_device_memory_bytes = peak;
    s.decode_graphs = true;
    s.fault = fault;
    return s;
  }
  const EngineOptions& options() const override { return options_; }

  // Ends every pending request: the cancelled ones as cancelled, the rest answered.
  void settle() {
    std::vector<RequestId> ids;
    for (auto& [id, p] : pending_) ids.push_back(id);
    for (RequestId id : ids) end(id, cancelled_.count(id) ? Status::kCancelled : Status::kAnswered);
  }
  void stream(RequestId id, std::string_view text) { pending_.at(id).on_partial(id, text); }
  size_t pending() const { return pending_.size(); }
  bool marked_cancelled(RequestId id) const { return cancelled_.count(id) > 0; }

  bool fail_at_once = false;
  int64_t peak = 0;
  std::string fault;  // EngineStats::fault: the replica has stopped

 private:
  void end(RequestId id, Status status) {
    Request request = std::move(pending_.at(id));
    pending_.erase(id);
    Result r;
    r.id = id;
    r.status = status;
    r.stream_id = request.stream_id;
    if (request.on_complete) request.on_complete(r);
  }

  EngineOptions options_;
  RequestId next_id_ = 0;
  std::map<RequestId, Request> pending_;
  std::set<RequestId> cancelled_;
};

struct Rig {
  explicit Rig(int n) {
    std::vector<ReplicatedEngine::Replica> replicas;
    for (int i = 0; i < n; ++i) {
      auto fake = std::make_unique<FakeEngine>();
      fakes.push_back(fake.get());
      replicas.push_back({std::move(fake), "cpu", 1000 + i});
    }
    EngineOptions options;
    options.devices = "cpu,cpu";
    engine = std::make_unique<ReplicatedEngine>(options, std::move(replicas));
  }
  // Submits a request that records its ending; returns its id.
  Submission submit(const std::string& stream = "") {
    Request r;
    r.stream_id = stream;
    r.on_complete = [this](const Result& res) {
      std::lock_guard<std::mutex> lock(m);
      ended[res.id].push_back(res.status);
    };
    return engine->submit(std::move(r));
  }
  std::vector<size_t> pending() const {
    std::vector<size_t> out;
    for (const FakeEngine* f : fakes) out.push_back(f->pending());
    return out;
  }

  std::mutex m;
  std::map<RequestId, std::vector<Status>> ended;
  std::vector<FakeEngine*> fakes;  // owned by the engine
  std::unique_ptr<ReplicatedEngine> engine;  // last: ending it ends requests, which record above
};

TEST(ReplicatedEngine, EachRequestGoesToTheLeastLoadedReplicaTiesInTurn) {
  Rig rig(3);
  for (int i = 0; i < 6; ++i) rig.submit();
  EXPECT_EQ(rig.pending(), (std::vector<size_t>{2, 2, 2}));
  rig.fakes[1]->settle();
  rig.submit();  // replica 1 has none in flight now
  EXPECT_EQ(rig.pending(), (std::vector<size_t>{2, 1, 2}));
  rig.submit();  // and still the fewest
  EXPECT_EQ(rig.pending(), (std::vector<size_t>{2, 2, 2}));
  rig.submit();  // a tie of three: the turn goes on after replica 1
  EXPECT_EQ(rig.pending(), (std::vector<size_t>{2, 2, 3}));
  const EngineStats s = rig.engine->stats();
  ASSERT_EQ(s.devices.size(), 3u);
  EXPECT_EQ(s.devices[0].requests, 2u);
  EXPECT_EQ(s.devices[1].requests, 4u);
  EXPECT_EQ(s.devices[2].requests, 3u);
}

TEST(ReplicatedEngine, IdsAreUniqueAcrossReplicasInCallbacksFuturesAndStreams) {
  Rig rig(2);
  std::vector<Submission> subs;
  std::map<RequestId, std::string> streamed;
  for (int i = 0; i < 4; ++i) {
    Request r;
    r.on_partial = [&](RequestId id, std::string_view text) { streamed[id] += text; };
    subs.push_back(rig.engine->submit(std::move(r)));
  }
  std::set<RequestId> ids;
  for (const Submission& s : subs) ids.insert(s.id);
  EXPECT_EQ(ids.size(), 4u) << "both replicas number their requests from 1";
  rig.fakes[1]->stream(1, "hi");  // replica 1's first request is the engine's second
  EXPECT_EQ(streamed[subs[1].id], "hi");
  rig.fakes[0]->settle();
  rig.fakes[1]->settle();
  for (Submission& s : subs) EXPECT_EQ(s.result.get().id, s.id);
}

TEST(ReplicatedEngine, CancelReachesTheReplicaThatHoldsTheRequest) {
  Rig rig(2);
  const Submission a = rig.submit(), b = rig.submit();
  EXPECT_TRUE(rig.engine->cancel(b.id));
  EXPECT_TRUE(rig.fakes[1]->marked_cancelled(1));
  EXPECT_FALSE(rig.fakes[0]->marked_cancelled(1));
  EXPECT_FALSE(rig.engine->cancel(b.id + 100)) << "no such request";
  rig.fakes[0]->settle();
  rig.fakes[1]->settle();
  EXPECT_EQ(rig.ended[a.id], std::vector<Status>{Status::kAnswered});
  EXPECT_EQ(rig.ended[b.id], std::vector<Status>{Status::kCancelled});
  EXPECT_FALSE(rig.engine->cancel(b.id)) << "an ended request cannot be cancelled";
  const EngineStats s = rig.engine->stats();
  EXPECT_EQ(s.submitted, 2u);
  EXPECT_EQ(s.answered, 1u);
  EXPECT_EQ(s.cancelled, 1u);
}

TEST(ReplicatedEngine, ARequestEndedInsideTheReplicasSubmitEndsOnce) {
  Rig rig(2);
  rig.fakes[0]->fail_at_once = true;
  Submission s = rig.submit();
  EXPECT_EQ(s.result.get().status, Status::kFailed);
  EXPECT_EQ(rig.ended[s.id].size(), 1u);
  EXPECT_FALSE(rig.engine->cancel(s.id));
  EXPECT_EQ(rig.engine->stats().failed, 1u);
  rig.submit();  // replica 0 holds none in flight again: the turn decides, replica 1
  rig.submit();  // then replica 0, which fails it at once again
  EXPECT_EQ(rig.pending(), (std::vector<size_t>{0, 1}));
}

// A replica whose device is lost fails at once and so holds none in flight: once a request has
// failed there, the requests go to the replicas that serve; the engine reports the fault only when
// every replica has stopped.
TEST(ReplicatedEngine, AReplicaThatHasStoppedGetsRequestsOnlyWhenAllHave) {
  Rig rig(2);
  rig.fakes[0]->fail_at_once = true;
  rig.fakes[0]->fault = "device lost";
  EXPECT_EQ(rig.submit().result.get().status, Status::kFailed);  // replica 0's turn
  for (int i = 0; i < 3; ++i) rig.submit();
  EXPECT_EQ(rig.pending(), (std::vector<size_t>{0, 3}));
  EXPECT_TRUE(rig.engine->stats().fault.empty()) << "replica 1 still serves";
  rig.fakes[1]->settle();
  rig.fakes[1]->fail_at_once = true;
  rig.fakes[1]->fault = "device lost too";
  EXPECT_EQ(rig.submit().result.get().status, Status::kFailed);
  const std::string fault = rig.engine->stats().fault;
  EXPECT_NE(fault.find("replica 0: device lost"), std::string::npos) << fault;
  EXPECT_NE(fault.find("replica 1: device lost too"), std::string::npos) << fault;
}

TEST(ReplicatedEngine, DestructionEndsEveryPendingRequestOnce) {
  Rig rig(2);
  std::vector<Submission> subs;
  for (int i = 0; i < 5; ++i) subs.push_back(rig.submit());
  // A callback that submits while the engine is going: refused at once, never lost.
  std::vector<Submission> late;
  Engine* engine = rig.engine.get();  // the unique_ptr is null while it destroys what it held
  Request r;
  r.on_complete = [&](const Result&) {
    Request again;
    again.on_complete = [&](const Result& res) { rig.ended[res.id].push_back(res.status); };
    late.push_back(engine->submit(std::move(again)));
  };
  subs.push_back(rig.engine->submit(std::move(r)));
  rig.engine.reset();
  for (Submission& s : subs) EXPECT_EQ(s.result.get().status, Status::kCancelled);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rig.ended[subs[i].id], std::vector<Status>{Status::kCancelled});
  ASSERT_EQ(late.size(), 1u);
  const Result refused = late[0].result.get();
  EXPECT_EQ(refused.status, Status::kCancelled);
  EXPECT_EQ(refused.error, "the engine is shutting down");
  EXPECT_EQ(rig.ended[late[0].id].size(), 1u);
}

TEST(ReplicatedEngine, StatsAddTheReplicasUpAndListEachEntrysPeaks) {
  Rig rig(2);
  rig.fakes[0]->peak = 70;
  rig.fakes[1]->peak = 50;
  rig.submit();
  const EngineStats s = rig.engine->stats();
  EXPECT_EQ(s.queued, 1u);
  EXPECT_EQ(s.decode_forwards, 20u);
  EXPECT_EQ(s.kv_blocks_total, 200);
  EXPECT_TRUE(s.decode_graphs);
  EXPECT_EQ(s.peak_device_memory_bytes, 70) << "two entries on one device count its peak once";
  ASSERT_EQ(s.devices.size(), 2u);
  EXPECT_EQ(s.devices[1].device, "cpu");
  EXPECT_EQ(s.devices[1].replica, 1);
  EXPECT_EQ(s.devices[1].predicted_peak_bytes, 1001);
  EXPECT_EQ(s.devices[1].measured_peak_bytes, 50);
  EXPECT_EQ(rig.engine->options().devices, "cpu,cpu");
}

}  // namespace
}  // namespace qwenvl::runtime
