// What a pipeline can be told beyond the public options (qwenvl/engine.h): for tests, and for
// checking one path on one GPU. The environment sets the first two for any front end.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

#include "qwenvl/placement.h"

namespace qwenvl::runtime::stages {

struct StageTuning {
  // Micro-batches a step is split into (at most one per sequence). 0: QWENVL_MICRO_BATCHES when set,
  // else one per stage with layers.
  int micro_batches = 0;
  // Hidden states cross through pinned host memory even where a device copy would do (also
  // QWENVL_STAGE_COPY=host): the path of GPUs without peer access, testable on one GPU.
  bool copy_through_host = false;
  // Test hook: false runs one lane (the scheduler waits for each decode step, split into
  // micro-batches, before the next), as before lanes, to measure what lanes gain (staged_executor.h).
  bool lanes = true;
  // Test hook: each entry of the device list sleeps this long per row of every micro-batch it runs
  // through its layers, so that a test can make one stage the slowest.
  std::vector<std::chrono::microseconds> delay_per_row;
  // Test hook: called by an entry's stage (its index in the device list) before each forward of its
  // layers; what it throws fails that step as a device error would.
  std::function<void(size_t entry)> before_forward;
  // Run this split instead of the planner's choice (qwenvl::PlanRequest::split).
  std::optional<LayerSplit> split;
  // Each stage on a GPU records and replays its own decode graphs (with EngineOptions::cuda_graphs;
  // the plan then counts their pools). Off until tests/gpu/test_gpu_pipeline.cpp has passed with it
  // on the GPU machine.
  bool decode_graphs = false;
};

// The tuning with what the environment sets filled in where the fields leave it open.
StageTuning with_environment(StageTuning tuning);

}  // namespace qwenvl::runtime::stages
