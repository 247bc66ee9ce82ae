// What happens after each generated token: its text joins the answer, new text is streamed to the
// partial callback (never a broken character, never text a stop string could still claim), and the
// sequence stops on an EOS id, a stop string, max_new_tokens or the context limit.
#pragma once

#include <cstdint>

#include "runtime/sequence.h"

namespace qwenvl::runtime {

enum class StopReason { kNone, kEos, kStopString, kLength };
const char* stop_reason_name(StopReason reason);

StopReason accept_token(Sequence& s, int32_t token, int64_t max_context);

}  // namespace qwenvl::runtime
