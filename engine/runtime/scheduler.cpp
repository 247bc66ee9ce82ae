// The ready queue, admission, retirement and the batch loop of scheduler.h.
#include "runtime/scheduler.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "kernels/device/async_host_copy.h"
#include "runtime/device_lost.h"
#include "runtime/fault_injection.h"
#include "runtime/queued_step.h"
#include "runtime/sampling.h"
#include "runtime/stopping.h"
#include "runtime/token_masks.h"

namespace qwenvl::runtime {

namespace {

// Mixed steps: admissions wait at most this many decode steps for their encoding group to fill
// (about 30 ms of a 7B batch of 64 on an H100; two sequences end a step there, so eight gather in
// four).
constexpr size_t kEncodeWaitSteps = 4;

std::string failure_reason(const std::exception& e, const at::Device& device) {
  if (const auto* oom = dynamic_cast<const c10::OutOfMemoryError*>(&e))
    return std::string("inference failed: out of memory on ") + device.str() + ": " + oom->what_without_backtrace();
  // libtorch's other errors in one line too: their backtrace is for us, not for the request's owner.
  if (const auto* torch = dynamic_cast<const c10::Error*>(&e)) return std::string("inference failed: ") + torch->what_without_backtrace();
  return std::string("inference failed: ") + e.what();
}

std::vector<int64_t> host_values(const at::Tensor& host) {
  return std::vector<int64_t>(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
}

}  // namespace

Scheduler::Scheduler(ModelExecutor& executor, RequestLifecycle& lifecycle, const SchedulerOptions& options)
    : executor_(executor),
      lifecycle_(lifecycle),
      options_(options),
      lanes_(static_cast<size_t>(std::max(1, executor.lanes()))),
      overlap_decode_(options.overlap_decode && lanes_ == 1),
      mixes_(lanes_ == 1 && executor.mixes_prefill() && options.prefill_tokens_per_step > 0) {}

void Scheduler::enqueue(std::shared_ptr<Sequence> s) {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (lost_.empty()) {
      ready_.push_back(std::move(s));
      ready_or_closed_.notify_all();
      return;
    }
    error = lost_;
  }
  lifecycle_.complete(*s, Status::kFailed, "failed", error);
}

std::string Scheduler::lost() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lost_;
}

void Scheduler::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  ready_or_closed_.notify_all();
}

bool Scheduler::cancel_if_not_admitted(Sequence& s) {
  std::lock_guard<std::mutex> lock(mutex_);  // admit() checks cancel_requested under it
  if (running_.count(&s) > 0) return false;
  s.cancel_requested = true;
  for (const auto& waiting : ready_)
    if (waiting.get() == &s) s.prompt = PreparedPrompt{};  // admit() ends it unread
  return true;
}

bool Scheduler::wait_for_work() {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_or_closed_.wait(lock, [&] { return closed_ || !ready_.empty(); });
  return !ready_.empty();
}

Scheduler::Counts Scheduler::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t blocks = 0;  // block tables change only under this lock (admit, retire)
  for (const auto& [s, owner] : running_) blocks += static_cast<int64_t>(s->slot.blocks.size());
  return {ready_.size(), running_.size(), blocks, split_prefills_.load(), step_times_.read()};
}

// Takes ready requests in arrival order while the batch has room for `room` more and the KV cache
// has their blocks. Those cancelled or past their deadline meanwhile, wherever they wait in the
// queue and even when the batch is full, end here, after the lock: their callers hear at once.
std::vector<Sequence*> Scheduler::admit(size_t room) {
  std::vector<Sequence*> admitted;
  std::vector<std::shared_ptr<Sequence>> stopped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Clock::time_point now = Clock::now();
    for (auto it = ready_.begin(); it != ready_.end();) {
      if ((*it)->cancel_requested || (*it)->expired(now)) {
        stopped.push_back(std::move(*it));
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
    while (lost_.empty() && !ready_.empty() && admitted.size() < room) {
      auto s = ready_.front();
      const int64_t need = executor_.blocks_for(static_cast<int64_t>(s->prompt.ids.size()) + s->settings.max_new_tokens);
      if (!executor_.allocate(need, s->slot)) break;
      ready_.pop_front();
      running_[s.get()] = s;
      admitted.push_back(s.get());
    }
  }
  for (auto& s : stopped) lifecycle_.end_if_stopped(*s);
  return admitted;
}

// Gives the KV blocks of sequences that left the batch (answered, stopped or failed) back.
void Scheduler::retire(const std::vector<Sequence*>& gone) {
  if (gone.empty()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (Sequence* s : gone) {
    executor_.release(s->slot);
    running_.erase(s);
  }
}

// Fails the sequences with `error` (those not already ended) and retires them.
void Scheduler::fail_all(const std::vector<Sequence*>& batch, const std::string& error) {
  for (Sequence* s : batch)
    if (!s->done) lifecycle_.complete(*s, Status::kFailed, "failed", error);
  retire(batch);
}

void Scheduler::failed(const std::vector<Sequence*>& batch, const std::exception& e) {
  const std::optional<std::string> lost = device_lost_reason(e, executor_.device());
  if (!lost) {
    fail_all(batch, failure_reason(e, executor_.device()));
    return;
  }
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    first = lost_.empty();
    if (first) lost_ = *lost;
  }
  if (first) lifecycle_.device_lost(*lost);  // new requests are refused before these fail
  fail_all(batch, *lost);
}

void Scheduler::fail_ready(const std::string& error) {
  std::deque<std::shared_ptr<Sequence>> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready.swap(ready_);
  }
  for (auto& s : ready)
    if (!s->done) lifecycle_.complete(*s, Status::kFailed, "failed", error);
}

// Each turn: prefill what was admitted since the last turn (its sequences join the lanes with the
// fewest rows), then the next lane in turn: collect its logits (waiting for its step in flight),
// pick every row's next token, end the sequences that stop, then launch one decode step for the
// rest. With one lane the step runs at once; with overlap_decode it is queued before the host
// reads the picked tokens (queue_next_step): the device works on it while the host checks stops
// and streams text. With several the step runs while the other lanes take their turns.
void Scheduler::run_until_idle() {
  std::vector<Lane> lanes(lanes_);
  size_t turn = 0;  // the lane whose step was launched longest ago
  bool prefilled = false;  // since the last step: that step's time carries the prefill's on the device
  while (true) {
    size_t rows = unencoded_.size() + embedded_.size();
    for (const Lane& lane : lanes) rows += lane.rows();
    std::vector<Sequence*> admitted = admit(options_.max_batch - rows);
    if (mixes_ && lanes.front().rows() > 0) {
      encode_when_due(admitted, options_.max_batch - rows - admitted.size());  // they ride in the coming steps
    } else {
      if (!unencoded_.empty()) {  // nothing decodes any more: those waiting for their group go first
        std::vector<Sequence*> waiting = take_unencoded();
        admitted.insert(admitted.begin(), waiting.begin(), waiting.end());
      }
      if (!admitted.empty()) {
        prefill(admitted, lanes);
        prefilled = true;
      }
    }
    Lane* lane = nullptr;
    for (size_t i = 0; i < lanes_ && lane == nullptr; ++i)
      if (lanes[(turn + i) % lanes_].rows() > 0) {
        lane = &lanes[(turn + i) % lanes_];
        turn = (turn + i + 1) % lanes_;
      }
    if (!lost().empty()) break;
    if (lane == nullptr) {
      if (embedded_.empty()) break;
      lane = &lanes.front();  // nothing decodes any more: the waiting prompts ride in a step of their own
    }
    try {
      lane->collect();
      step(*lane, /*steady=*/!prefilled);
      prefilled = false;
    } catch (const std::exception& e) {
      // Its joined sequences (a step that failed before they joined) stay, for its next turn.
      failed(lane->live, e);
      lane->live.clear();
      lane->logits = at::Tensor();
    }
  }
  if (const std::string error = lost(); !error.empty()) {
    for (Lane& lane : lanes) {
      lane.drain();  // retired only once nothing writes their blocks
      fail_all(lane.live, error);
      fail_all(lane.joined, error);
    }
    std::vector<Sequence*> waiting = unencoded_;
    unencoded_.clear();
    for (const auto& [s, embeddings] : embedded_) waiting.push_back(s);
    embedded_.clear();
    fail_all(waiting, error);
    fail_ready(error);
  }
}

// Work on several sequences that runs out of device memory is retried in halves (most of its memory,
// the vision tower's activations and the packed prompt, grows with the batch); one sequence that
// still runs out fails with the reason. Any other failure fails what it was given.
void Scheduler::in_halves_on_oom(const std::vector<Sequence*>& batch,
                                 const std::function<void(const std::vector<Sequence*>&)>& attempt) {
  std::string reason;
  try {
    throw_if_out_of_memory_injected();
    attempt(batch);
    return;
  } catch (const c10::OutOfMemoryError& e) {
    reason = failure_reason(e, executor_.device());
  } catch (const std::exception& e) {
    failed(batch, e);  // a lost device stops the scheduler; any other failure fails what it was given
    return;
  }
  if (batch.size() < 2) {
    fail_all(batch, reason);
    return;
  }
  split_prefills_.fetch_add(1);
  const auto middle = batch.begin() + static_cast<std::ptrdiff_t>(batch.size() / 2);
  in_halves_on_oom({batch.begin(), middle}, attempt);
  in_halves_on_oom({middle, batch.end()}, attempt);
}

void Scheduler::prefill(const std::vector<Sequence*>& admitted, std::vector<Sequence*>& live, at::Tensor& logits) {
  in_halves_on_oom(admitted, [&](const std::vector<Sequence*>& part) {
    // What a prefill changes in a slot besides the KV entries it writes (the block table changes
    // only under the lock, and a prefill leaves it alone): put back when it fails, so that a half
    // writes the same blocks again.
    std::vector<std::pair<int64_t, std::array<int64_t, 3>>> before;
    std::vector<const PreparedPrompt*> prompts;
    std::vector<SequenceSlot*> slots;
    for (Sequence* s : part) {
      before.emplace_back(s->slot.length, s->slot.last_position);
      prompts.push_back(&s->prompt);
      slots.push_back(&s->slot);
    }
    at::Tensor fresh;
    try {
      fresh = executor_.prefill(prompts, slots);
    } catch (...) {
      for (size_t i = 0; i < part.size(); ++i) std::tie(part[i]->slot.length, part[i]->slot.last_position) = before[i];
      throw;
    }
    // A copy either way: decode logits live in graph memory that the next step overwrites.
    logits = live.empty() ? fresh : at::cat({logits, fresh});
    live.insert(live.end(), part.begin(), part.end());
  });
}

void Scheduler::prefill(const std::vector<Sequence*>& admitted, std::vector<Lane>& lanes) {
  std::vector<Sequence*> fresh;  // those prefilled (a failed half has ended its own)
  at::Tensor logits;
  prefill(admitted, fresh, logits);
  if (lanes.size() == 1) {
    lanes.front().join(fresh, logits);
    return;
  }
  for (size_t row = 0; row < fresh.size(); ++row) {
    Lane* fewest = &lanes.front();
    for (Lane& lane : lanes)
      if (lane.rows() < fewest->rows()) fewest = &lane;
    fewest->join({fresh[row]}, logits.narrow(0, static_cast<int64_t>(row), 1));
  }
}

void Scheduler::embed(const std::vector<Sequence*>& admitted) {
  in_halves_on_oom(admitted, [&](const std::vector<Sequence*>& part) {
    std::vector<const PreparedPrompt*> prompts;
    for (Sequence* s : part) prompts.push_back(&s->prompt);
    const std::vector<at::Tensor> embeddings = executor_.embed_prompts(prompts);
    for (size_t i = 0; i < part.size(); ++i) embedded_.emplace_back(part[i], embeddings[i]);
  });
}

void Scheduler::encode_when_due(const std::vector<Sequence*>& admitted, size_t room) {
  if (unencoded_.empty()) unencoded_steps_ = 0;
  unencoded_.insert(unencoded_.end(), admitted.begin(), admitted.end());
  if (unencoded_.empty()) return;
  const size_t group = options_.encode_group;
  if (unencoded_.size() >= group || room >= group || unencoded_steps_ >= kEncodeWaitSteps) {
    const std::vector<Sequence*> due = take_unencoded();
    if (!due.empty()) embed(due);  // all of them may have been cancelled meanwhile
    return;
  }
  ++unencoded_steps_;  // a decode step follows
}

std::vector<Sequence*> Scheduler::take_unencoded() {
  std::vector<Sequence*> waiting, stopped;
  for (Sequence* s : unencoded_) (lifecycle_.end_if_stopped(*s) ? stopped : waiting).push_back(s);
  unencoded_.clear();
  retire(stopped);
  return waiting;
}

RidingPrompts Scheduler::take_riding() {
  RidingPrompts riding;
  std::vector<Sequence*> stopped;
  int64_t tokens = 0;
  while (!embedded_.empty()) {
    auto [s, embeddings] = embedded_.front();
    if (lifecycle_.end_if_stopped(*s)) {
      stopped.push_back(s);
      embedded_.pop_front();
      continue;
    }
    if (!riding.empty() && tokens + embeddings.size(0) > options_.prefill_tokens_per_step) break;
    tokens += embeddings.size(0);
    riding.sequences.push_back(s);
    riding.embeddings.push_back(std::move(embeddings));
    embedded_.pop_front();
  }
  retire(stopped);
  return riding;
}

void Scheduler::step(Lane& lane, bool steady) {
  const RidingPrompts riding = take_riding();
  try {
    step(lane, steady && riding.empty(), riding);
  } catch (const std::exception& e) {
    failed(riding.sequences, e);  // the lane's own rows fail in run_until_idle
    throw;
  }
}

void Scheduler::step(Lane& lane, bool steady, const RidingPrompts& riding) {
  StepTimes::Step timed(step_times_, steady);
  std::vector<Sequence*>& live = lane.live;
  at::Tensor& logits = lane.logits;
  if (live.empty()) {  // nothing decodes: the prompts ride alone
    if (riding.empty()) return;
    logits = run_mixed_step(executor_, at::empty({0}, at::kLong), {}, riding);
    live = riding.sequences;
    timed.lap(StepTimes::kLaunch);
    return;
  }
  std::vector<SamplingRow> rows;
  std::vector<structured::TokenConstraint*> constraints;
  for (Sequence* s : live) {
    rows.push_back({s->sampler.get(), &s->seen, s->generated.size()});
    constraints.push_back(s->constraint.get());
  }
  // The masks of logits the device may still be computing: the host fills them meanwhile.
  const TokenMasks masks = fill_token_masks(constraints, logits.size(1), logits.is_cuda());
  timed.lap(StepTimes::kMaskFill);
  const at::Tensor tokens = pick_tokens(logits, rows, masks);  // on a GPU, possibly not computed yet
  std::vector<int64_t> picked;
  QueuedStep ahead;
  if (overlap_decode_) {
    kernels::AsyncHostCopy to_host(tokens);  // queued before the next step: waits for this pick only
    ahead = queue_next_step(executor_, tokens, live, options_.max_context, riding);
    timed.lap(StepTimes::kLaunch);
    picked = host_values(to_host.wait());
  } else {
    timed.lap(StepTimes::kLaunch);
    picked = host_values(tokens.to(at::kCPU).contiguous());
  }
  timed.lap(StepTimes::kWait);
  // Before the tokens are taken: a sequence that ends here ends with its grammar's final state.
  accept_constrained_tokens(constraints, picked);
  timed.lap(StepTimes::kGrammarAccept);
  std::vector<Sequence*> next, gone;
  std::vector<int64_t> next_tokens;
  std::vector<SequenceSlot*> next_slots;
  for (size_t row = 0; row < live.size(); ++row) {
    Sequence& s = *live[row];
    if (lifecycle_.end_if_stopped(s)) {
      gone.push_back(&s);
      continue;
    }
    const auto token = static_cast<int32_t>(picked[row]);
    const StopReason reason = accept_token(s, token, options_.max_context);
    if (reason != StopReason::kNone) {
      lifecycle_.complete(s, Status::kAnswered, stop_reason_name(reason), {});
      gone.push_back(&s);
      continue;
    }
    next.push_back(&s);
    next_tokens.push_back(token);
    next_slots.push_back(&s.slot);
  }
  // The queued step wrote one more entry into the cache of sequences that end here; their blocks
  // go back only after it (the device runs it before anything queued later). A lane's step has
  // ended before its turn, and no other lane's step writes its sequences' blocks.
  retire(gone);
  // The riding prompts' rows follow the decode rows'.
  if (overlap_decode_) {
    std::vector<Sequence*> kept = next;
    kept.insert(kept.end(), riding.sequences.begin(), riding.sequences.end());
    std::tie(live, logits) = ahead.keep(kept);
    timed.lap(StepTimes::kTokens);
    return;
  }
  live = next;
  logits = at::Tensor();
  timed.lap(StepTimes::kTokens);
  if (!riding.empty()) {
    logits = run_mixed_step(executor_, at::tensor(next_tokens, at::kLong), next_slots, riding);
    live.insert(live.end(), riding.sequences.begin(), riding.sequences.end());
    timed.lap(StepTimes::kLaunch);
    return;
  }
  if (live.empty()) return;
  if (lanes_ == 1)
    logits = executor_.decode(next_tokens, next_slots);
  else
    lane.pending = executor_.decode_async(next_tokens, next_slots);
  timed.lap(StepTimes::kLaunch);
}

}  // namespace qwenvl::runtime
