// The language model (Qwen2 decoder with M-RoPE): token embedding, decoder layers (GQA attention
// with q/k/v bias, SwiGLU MLP, RMSNorm), final norm and LM head, tied or not (transformers'
// Qwen2_5_VLTextModel). One call runs one packed step, prefill or decode, for every sequence in it.
// The layers call the operations of qwenvl-kernels (residual RMSNorm, M-RoPE with the KV-cache
// write, SwiGLU, attention, linear), which run our CUDA kernels on a GPU and their libtorch
// reference on the CPU; q/k/v and gate/up are one GEMM each where the weights are copied to a GPU.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "nn/attention_batch.h"
#include "nn/fused_projection.h"
#include "nn/kv_cache.h"
#include "nn/model_part.h"

namespace qwenvl::nn {

class LanguageModel {
 public:
  // On the CPU it holds references into `weights`, which must outlive it; on a CUDA device it holds
  // its own copies there. dtype: the compute dtype. part: the layers (and embeddings, final norm and
  // LM head) it holds; a pipeline stage's cache holds its layers only, indexed from 0.
  LanguageModel(const model::TextConfig& config, const model::Weights& weights, at::ScalarType dtype,
                bool tie_word_embeddings, at::Device device = at::kCPU, const ModelPart& part = {});

  // ids int64 [T] -> embeddings [T, hidden].
  at::Tensor embed(const at::Tensor& ids) const;

  // hidden [T, hidden] (embeddings with vision features spliced in, or the residual stream a
  // previous stage handed over), positions int64 [3, T]. Writes the new tokens' K/V of its layers
  // into `cache` and returns the final-normed hidden states [T, hidden] where it holds the final
  // norm, else the residual stream after its last layer (what the next stage takes as `hidden`).
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& positions, const AttentionBatch& batch,
                     nn::KvCache& cache) const;

  // hidden rows [n, hidden] -> logits [n, vocab] in the compute dtype.
  at::Tensor logits(const at::Tensor& hidden) const;

  const model::TextConfig& config() const { return config_; }

 private:
  struct Layer {
    at::Tensor input_norm, post_norm, o_w, down_w;
    FusedProjection qkv, gate_up;
  };
  at::Tensor attend(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const AttentionBatch& batch, nn::KvCache& cache) const;
  at::Tensor attention(int64_t layer, const Layer& l, const at::Tensor& x, const at::Tensor& positions,
                       const AttentionBatch& batch, nn::KvCache& cache) const;

  model::TextConfig config_;
  ModelPart part_;
  at::Tensor embed_, norm_, lm_head_;
  std::vector<Layer> layers_;
};

}  // namespace qwenvl::nn
