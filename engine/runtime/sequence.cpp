#include "runtime/sequence.h"

namespace qwenvl::runtime {

void finish(Sequence& s, Status status, std::string finish_reason, std::string error) {
  if (s.done) return;
  s.done = true;
  const auto now = Clock::now();
  auto ms = [&](Clock::time_point t) { return std::chrono::duration<double, std::milli>(t - s.submitted).count(); };
  Result r;
  r.id = s.id;
  r.status = status;
  r.text = s.text;
  r.token_ids = s.generated;
  r.finish_reason = std::move(finish_reason);
  r.stop_string = s.matched_stop;
  r.error = std::move(error);
  r.incomplete = s.constraint && !s.constraint->complete();
  r.stream_id = s.request.stream_id;
  r.prompt_tokens = static_cast<int>(s.prompt.ids.size());
  r.generated_tokens = static_cast<int>(s.generated.size());
  r.ttft_ms = s.first_token ? ms(*s.first_token) : 0.0;
  r.total_ms = ms(now);
  if (s.request.on_complete) {
    try {
      s.request.on_complete(r);
    } catch (...) {
      // A throwing callback must not take the engine down; the future still gets the result.
    }
  }
  s.promise.set_value(std::move(r));
}

}  // namespace qwenvl::runtime
