// Engine::create with a pipeline's tuning (stage_tuning.h): what tests use to force micro-batches,
// the host-staged copy, a layer split or a delay per stage, which the public options leave out.
#pragma once

#include <memory>

#include "qwenvl/engine.h"
#include "runtime/stages/stage_tuning.h"

namespace qwenvl::runtime::stages {

std::unique_ptr<Engine> create_engine(EngineOptions options, const StageTuning& tuning);

}  // namespace qwenvl::runtime::stages
