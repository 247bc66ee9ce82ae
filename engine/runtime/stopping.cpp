#include "runtime/stopping.h"

#include <algorithm>
#include <string>


namespace qwenvl::runtime {

namespace {

// Bytes at the end of `text` that could still grow into one of the stop strings.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const auto& stop : stops)
    for (size_t n = std::min(stop.size() - 1, text.size()); n > held; --n)
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        held = n;
        break;
      }
  return held;
}

void stream(Sequence& s, size_t upto) {
  if (upto <= s.streamed) return;
  if (s.request.on_partial) {
    try {
      s.request.on_partial(s.id, std::string_view(s.text).substr(s.streamed, upto - s.streamed));
    } catch (...) {
      // A throwing callback must not stop generation.
    }
  }
  s.streamed = upto;
}

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kEos: return "eos";
    case StopReason::kStopString: return "stop_string";
    case StopReason::kLength: return "length";
    case StopReason::kNone: break;
  }
  return "";
}

StopReason accept_token(Sequence& s, int32_t token, int64_t max_context) {
  if (!s.first_token) s.first_token = Clock::now();
  s.generated.push_back(token);
  s.seen.push_back(token);
  const size_t before = s.text.size();
  s.text += s.decoder->push(token);

  const auto& stops = s.settings.stop_strings;
  StopReason reason = StopReason::kNone;
  if (!s.request.sampling.ignore_eos && std::find(s.settings.eos_token_ids.begin(), s.settings.eos_token_ids.end(), token) !=
      s.settings.eos_token_ids.end()) {
    reason = StopReason::kEos;
  } else if (!stops.empty()) {
    size_t longest = 0;
    for (const auto& stop : stops) longest = std::max(longest, stop.size());
    const size_t from = before >= longest ? before - longest + 1 : 0;
    // The earliest match ends the answer; of two at the same place, the first one listed names it.
    size_t cut = std::string::npos;
    const std::string* matched = nullptr;
    for (const auto& stop : stops)
      if (const size_t at = s.text.find(stop, from); at < cut) {
        cut = at;
        matched = &stop;
      }
    if (matched != nullptr) {
      s.text.resize(cut);  // the stop string stays out of the answer
      s.matched_stop = *matched;
      reason = StopReason::kStopString;
    }
  }
  if (reason == StopReason::kNone &&
      (static_cast<int64_t>(s.generated.size()) >= s.settings.max_new_tokens ||
       static_cast<int64_t>(s.prompt.ids.size() + s.generated.size()) >= max_context))
    reason = StopReason::kLength;

  if (reason == StopReason::kNone) {
    stream(s, s.text.size() - held_back(s.text, stops));
  } else {
    if (reason != StopReason::kStopString) s.text += s.decoder->flush();
    stream(s, s.text.size());
  }
  return reason;
}

}  // namespace qwenvl::runtime
