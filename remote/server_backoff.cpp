// The backoff's state machine: up; down with a time for the next attempt; down with an attempt out.
#include "server_backoff.h"

#include <algorithm>

namespace qwenvl::remote {

namespace {
// How often a waiting caller looks at give_up (a cancelled or expired request stops waiting within it).
constexpr std::chrono::milliseconds kPoll{20};
}  // namespace

bool ServerBackoff::wait_turn(const std::function<bool()>& give_up, bool* probe) {
  std::unique_lock<std::mutex> lock(mutex_);
  *probe = false;
  while (true) {
    if (!down_) return true;
    if (give_up()) return false;
    const auto now = Clock::now();
    if (!probing_ && now >= next_attempt_) {
      probing_ = true;
      *probe = true;
      return true;
    }
    changed_.wait_until(lock, std::min(probing_ ? now + kPoll : next_attempt_, now + kPoll));
  }
}

void ServerBackoff::succeeded() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!down_ && !probing_) return;
    down_ = false;
    probing_ = false;
    delay_ = min_;
  }
  changed_.notify_all();
}

void ServerBackoff::failed(bool probe) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (down_ && !probe) return;  // a request that was already out when the server went down
    if (probe) {
      probing_ = false;
      delay_ = std::min(max_, delay_ * 2);
    }
    down_ = true;
    next_attempt_ = Clock::now() + delay_;
  }
  changed_.notify_all();
}

void ServerBackoff::abandoned(bool probe) {
  if (!probe) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    probing_ = false;
  }
  changed_.notify_all();
}

bool ServerBackoff::down() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return down_;
}

std::chrono::milliseconds ServerBackoff::next_wait() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return delay_;
}

}  // namespace qwenvl::remote
