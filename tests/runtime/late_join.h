// Requests that join while another decodes: `late` is submitted from the streaming callback of
// `first` (on the engine's thread, after its first piece), so each is admitted while `first` runs.
#pragma once

#include <atomic>
#include <future>
#include <string_view>
#include <utility>
#include <vector>

#include "../nn/network_reference.h"
#include "qwenvl/engine.h"

namespace qwenvl::test {

struct LateJoin {
  Result first;
  std::vector<Result> late;  // in the order given
};

inline LateJoin run_late_join(Engine& engine, CaseRequest first, std::vector<CaseRequest> late) {
  std::promise<std::vector<Submission>> submissions;
  std::atomic<bool> submitted{false};
  first.request.on_partial = [&](RequestId, std::string_view) {
    if (submitted.exchange(true)) return;
    std::vector<Submission> handles;
    for (auto& r : late) handles.push_back(engine.submit(std::move(r.request)));
    submissions.set_value(std::move(handles));
  };
  LateJoin out;
  out.first = engine.submit(std::move(first.request)).result.get();
  if (!submitted.load()) return out;  // no piece streamed: nothing joined
  for (Submission& s : submissions.get_future().get()) out.late.push_back(s.result.get());
  return out;
}

}  // namespace qwenvl::test
