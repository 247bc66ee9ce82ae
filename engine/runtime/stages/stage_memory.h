// What a pipeline stage holds on the CPU, where there is no allocator pool to measure (on a GPU a
// stage's memory is its pool's, kernels/device/memory_pool.h): the bytes of the weights of its part
// as loaded, and of its KV cache. EngineStats reports it as the stage's measured peak there, so that
// the per-stage stats are tested on the CPU.
#pragma once

#include <cstdint>

#include "model/weights.h"
#include "nn/model_part.h"

namespace qwenvl::runtime::stages {

// The bytes of the loaded weights that `part` (its layers resolved) of a model of `num_layers`
// decoder layers holds: its decoder layers, the vision tower, the embeddings, the final norm and LM
// head (the embeddings' matrix where the checkpoint ties them).
int64_t part_weight_bytes(const model::Weights& weights, const nn::ModelPart& part, int64_t num_layers);

}  // namespace qwenvl::runtime::stages
