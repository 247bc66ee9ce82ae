// Qwen2_5_VLForConditionalGeneration as three batch-wide calls: one packed vision forward for every
// image and clip of a step, one packed language-model forward (prefill or decode) for every
// sequence, and the LM head on the rows that need logits. Vision features are spliced into the
// prompt embeddings at the image and video pad tokens. Counters record each forward, so tests can
// prove that a batch runs as one call, not a loop over requests.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "nn/language_model.h"
#include "nn/model_part.h"
#include "nn/vision_tower.h"

namespace qwenvl::nn {

struct ForwardCounters {
  std::atomic<int64_t> vision{0};
  std::atomic<int64_t> prefill{0};
  std::atomic<int64_t> decode{0};
  std::atomic<int64_t> decode_rows{0};  // sequences, summed over the decode steps
  std::atomic<int64_t> mixed{0};        // decode steps that also prefilled prompts (in prefill and decode too)
};

class Qwen25VL {
 public:
  // device: where the network runs (a CUDA device copies the weights there and runs the kernels).
  // part: what of it this device holds (a pipeline stage's share; the whole model by default).
  Qwen25VL(const model::ModelConfig& config, const model::Weights& weights, at::ScalarType dtype,
           at::Device device = at::kCPU, const ModelPart& part = {});

  // pixel_values of all items packed, their grids -> features [tokens, hidden], items in order.
  at::Tensor encode_vision(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const;

  // Embeddings of ids [T] with vision features [n, hidden] written, in order, into the rows whose id
  // is the image or video pad (image features fill image pads, video features video pads).
  at::Tensor embed(const at::Tensor& ids, const at::Tensor& image_features, const at::Tensor& video_features) const;
  // Plain token embeddings (decode steps: a generated pad id is just a token there).
  at::Tensor embed_text(const at::Tensor& ids) const { return language_model_.embed(ids); }

  at::Tensor forward(const at::Tensor& embeddings, const at::Tensor& positions, const AttentionBatch& batch,
                     nn::KvCache& cache) const;
  at::Tensor logits(const at::Tensor& hidden) const { return language_model_.logits(hidden); }

  // forward() of a decode step recorded into a device graph: not counted when recorded; each replay
  // counts itself and its rows through count_replayed_decode().
  at::Tensor forward_to_record(const at::Tensor& embeddings, const at::Tensor& positions, const AttentionBatch& batch,
                               nn::KvCache& cache) const {
    return language_model_.forward(embeddings, positions, batch, cache);
  }
  void count_replayed_decode(int64_t rows) const {
    ++counters_->decode;
    counters_->decode_rows += rows;
  }

  const model::ModelConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  const ForwardCounters& counters() const { return *counters_; }

 private:
  model::ModelConfig config_;
  at::ScalarType dtype_;
  at::Device device_;
  std::optional<VisionTower> vision_;  // absent from a stage that does not run it
  LanguageModel language_model_;
  std::unique_ptr<ForwardCounters> counters_ = std::make_unique<ForwardCounters>();
};

}  // namespace qwenvl::nn
