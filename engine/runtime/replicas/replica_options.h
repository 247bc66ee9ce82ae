// What each replica of a plan runs with: the engine's options for one device entry, with the
// plan's dtype and KV cache, so that every replica stays within its entry's budget.
#pragma once

#include <vector>

#include "qwenvl/engine.h"
#include "qwenvl/placement.h"

namespace qwenvl::runtime {

// One set of one-device options per entry of the plan (a plan of replicas, or of one device). The
// KV cache is the plan's for the entry; a kv_cache_bytes of the caller's is kept where the entry's
// budget holds it beside the rest of the plan, else this throws Error saying how much is missing.
std::vector<EngineOptions> replica_options(const EngineOptions& options, const Plan& plan);

}  // namespace qwenvl::runtime
