// One engine per process for each model + devices + placement + dtype (a remote engine: each
// remote-url + remote-model), or explicit engine-id, shared by every qwenvl element: several streams
// submit to it and its waiting requests run together as one batch. The last element to let go of an
// engine destroys it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "qwenvl/engine.h"

namespace qwenvl::gst {

struct SharedEngine {
  std::shared_ptr<Engine> engine;
  uint64_t instance = 0;       // process-unique number of this engine (elements that share it agree)
  uint64_t warmup_ns = 0;      // how long the warm-up request took, submit to answer
  std::string key;             // what it is shared under
  int max_batch = 0;           // EngineOptions::max_batch it was created with; 0: a remote engine
};

// Which engine an element asks for: `identity` names it ("model=DIR device=cpu dtype=auto",
// "remote-url=URL remote-model=NAME"), `description` says it to a person ("model 'DIR' on cpu
// (auto)"), `create` makes it (nullptr and *error on failure). `max_batch` (0 for a remote engine) is
// not part of the identity: elements that differ only in it share the engine created by the first,
// which runs with that first element's batch (SharedEngine::max_batch says which).
struct EngineRecipe {
  std::string identity;
  std::string description;
  std::function<Engine*(std::string* error)> create;
  int max_batch = 0;
};

// The engine of `recipe` (or of `engine_id` when not empty, which must then run the same one),
// created and warmed up with one tiny request when no element holds it yet. Throws qwenvl::Error
// saying what to fix.
SharedEngine acquire_shared_engine(const std::string& engine_id, const EngineRecipe& recipe);

}  // namespace qwenvl::gst
