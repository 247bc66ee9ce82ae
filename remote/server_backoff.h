// Paces the remote engine's attempts at a server that failed (refused the connection, timed out,
// answered 5xx): while it is up every worker goes at once; once it has failed, one attempt at a
// time, each after a wait that doubles from backoff_min up to backoff_max, until one gets a
// response, which puts every worker back to work. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace qwenvl::remote {

class ServerBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  ServerBackoff(std::chrono::milliseconds min, std::chrono::milliseconds max) : min_(min), max_(max), delay_(min) {}

  // Waits for this caller's turn; false when `give_up` (polled) turned true first. *probe: the
  // server is down and this caller's attempt is the one that tests it (it must report the outcome).
  bool wait_turn(const std::function<bool()>& give_up, bool* probe);
  // The server responded (any status below 500).
  void succeeded();
  // The server failed an attempt: `probe` as wait_turn set it.
  void failed(bool probe);
  // A probe that ended without reaching the server (cancelled first): the next caller probes.
  void abandoned(bool probe);
  bool down() const;
  // How long the next attempt waits (for error messages).
  std::chrono::milliseconds next_wait() const;

 private:
  const std::chrono::milliseconds min_, max_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool down_ = false;
  bool probing_ = false;
  std::chrono::milliseconds delay_;
  Clock::time_point next_attempt_{};
};

}  // namespace qwenvl::remote
