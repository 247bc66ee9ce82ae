// How the scheduler ends the requests it runs. The engine keeps their lifecycle (the table of live
// requests, the counters, the user's callbacks), the scheduler decides when: an answer complete, a
// request cancelled or past its deadline, a batch failed, the engine stopped. The calls take the engine's lock and run
// the user's callback after releasing it; never make them while holding a lock of your own.
#pragma once

#include <string>

#include "qwenvl/engine.h"
#include "runtime/sequence.h"

namespace qwenvl::runtime {

class RequestLifecycle {
 public:
  virtual ~RequestLifecycle() = default;
  // Ends the request exactly once with this status, finish reason and error.
  virtual void complete(Sequence& s, Status status, std::string reason, std::string error) = 0;
  // Ends the request if it was cancelled or ran past its deadline; false when it may go on.
  virtual bool end_if_stopped(Sequence& s) = 0;
  // A device is lost (device_lost.h): from now on the engine fails every request it holds that the
  // scheduler does not, and every later one, with `reason`. Called once, before the scheduler fails
  // its own.
  virtual void device_lost(const std::string& reason) = 0;
};

}  // namespace qwenvl::runtime
