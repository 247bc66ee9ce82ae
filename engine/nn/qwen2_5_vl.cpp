#include "nn/qwen2_5_vl.h"

#include <string>

#include "qwenvl/error.h"

namespace qwenvl::nn {

Qwen25VL::Qwen25VL(const model::ModelConfig& config, const model::Weights& weights, at::ScalarType dtype,
                   at::Device device, const ModelPart& part)
    : config_(config),
      dtype_(dtype),
      device_(device),
      language_model_(config.text, weights, dtype, config.tie_word_embeddings, device, part) {
  if (part.vision) vision_.emplace(config.vision, weights, dtype, device);
  if (config.vision.out_hidden_size != config.text.hidden_size)
    throw Error("config: vision out_hidden_size " + std::to_string(config.vision.out_hidden_size) +
                " differs from the language model's hidden_size " + std::to_string(config.text.hidden_size));
}

at::Tensor Qwen25VL::encode_vision(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const {
  if (!vision_) throw Error("vision: this part of the model does not hold the vision tower");
  ++counters_->vision;
  return vision_->forward(pixel_values, grids);
}

at::Tensor Qwen25VL::embed(const at::Tensor& ids, const at::Tensor& image_features,
                           const at::Tensor& video_features) const {
  auto x = language_model_.embed(ids);
  auto splice = [&](int64_t pad_id, const at::Tensor& features, const char* what) {
    auto rows = (ids == pad_id).nonzero().view({-1}).to(x.device());
    const int64_t n = features.defined() ? features.size(0) : 0;
    if (rows.size(0) != n)
      throw Error(std::string(what) + " features and pad tokens do not match: " + std::to_string(rows.size(0)) +
                  " pad tokens, " + std::to_string(n) + " features");
    if (n > 0) x.index_copy_(0, rows, features.to(x.device(), x.scalar_type()));
  };
  splice(config_.image_token_id, image_features, "image");
  splice(config_.video_token_id, video_features, "video");
  return x;
}

at::Tensor Qwen25VL::forward(const at::Tensor& embeddings, const at::Tensor& positions, const AttentionBatch& batch,
                             nn::KvCache& cache) const {
  // A mixed step counts as both: the prompts' prefill and the running rows' decode step.
  if (batch.kind != AttentionBatch::Kind::kDecode) ++counters_->prefill;
  if (batch.kind == AttentionBatch::Kind::kMixed) ++counters_->mixed;
  if (batch.kind == AttentionBatch::Kind::kDecode || batch.kind == AttentionBatch::Kind::kMixed) {
    ++counters_->decode;
    counters_->decode_rows += batch.seq_lens.numel();
  }
  return language_model_.forward(embeddings, positions, batch, cache);
}

}  // namespace qwenvl::nn
