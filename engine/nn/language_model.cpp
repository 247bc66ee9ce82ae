#include "nn/language_model.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary.h"
#include "kernels/silu_and_mul.h"
#include "model/weight_names.h"
#include "qwenvl/error.h"

namespace qwenvl::nn {

LanguageModel::LanguageModel(const model::TextConfig& config, const model::Weights& weights,
                             at::ScalarType dtype, bool tie_word_embeddings, at::Device device,
                             const ModelPart& part)
    : config_(config), part_(part) {
  if (part_.end_layer < 0) part_.end_layer = config.num_hidden_layers;
  if (part_.first_layer < 0 || part_.first_layer > part_.end_layer || part_.end_layer > config.num_hidden_layers)
    throw Error("language model: layers [" + std::to_string(part_.first_layer) + ", " + std::to_string(part_.end_layer) +
                ") are not within the model's " + std::to_string(config.num_hidden_layers));
  // transformers falls back to [16, 24, 24] when rope_parameters has no mrope_section.
  if (config_.mrope_section.empty()) config_.mrope_section = {16, 24, 24};
  const int64_t half = config_.head_dim() / 2;
  int64_t sum = 0;
  for (int64_t s : config_.mrope_section) {
    if (s < 0) throw Error("text config: mrope_section has a negative entry");
    sum += s;
  }
  if (config_.mrope_section.size() != 3 || sum != half)
    throw Error("text config: mrope_section must have 3 entries summing to head_dim / 2 = " + std::to_string(half));
  if (config.hidden_act != "silu")
    throw Error("text config: hidden_act '" + config.hidden_act + "' is not supported (Qwen2.5-VL uses silu)");
  for (const auto& type : config.layer_types)
    if (type != "full_attention")
      throw Error("text config: layer type '" + type + "' (sliding-window attention) is not supported");
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    throw Error("text config: num_attention_heads is not a multiple of num_key_value_heads");
  // On the CPU .to() keeps a tensor already in dtype (no copy); on a CUDA device it copies there.
  auto w = [&](const std::string& name) { return weights.get(name).to(device, dtype); };
  const std::string lm = model::names::kLanguageModel;
  if (part_.embeddings || (part_.lm_head && tie_word_embeddings)) embed_ = w(model::names::kEmbedTokens);
  if (part_.lm_head) {
    norm_ = w(lm + "norm.weight");
    lm_head_ = tie_word_embeddings ? embed_ : w(model::names::kLmHead);
  }
  for (int64_t i = part_.first_layer; i < part_.end_layer; ++i) {
    const std::string p = model::names::text_layer(i), a = p + "self_attn.", m = p + "mlp.";
    Layer l;
    l.input_norm = w(p + "input_layernorm.weight");
    l.post_norm = w(p + "post_attention_layernorm.weight");
    l.qkv = FusedProjection(weights, {a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"},
                            {a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"}, dtype, device);
    l.o_w = w(a + "o_proj.weight");
    l.gate_up = FusedProjection(weights, {m + "gate_proj.weight", m + "up_proj.weight"}, {}, dtype, device);
    l.down_w = w(m + "down_proj.weight");
    layers_.push_back(std::move(l));
  }
}

at::Tensor LanguageModel::embed(const at::Tensor& ids) const {
  if (!part_.embeddings) throw Error("language model: this part holds no token embeddings");
  return embed_.index_select(0, ids.to(embed_.device()));
}

// Attends as the step's kind asks, the new keys and values already in the cache: among the new
// tokens (fresh prompts), to the paged cache (a continued prefix), one query per sequence, or fresh
// prompts and then one query per sequence (a mixed step).
at::Tensor LanguageModel::attend(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const AttentionBatch& batch, nn::KvCache& cache) const {
  const double scale = 1.0 / std::sqrt(static_cast<double>(config_.head_dim()));
  switch (batch.kind) {
    case AttentionBatch::Kind::kPrefill:
      return kernels::flash_attention_varlen(q, k, v, batch.cu_seqlens_q, batch.cu_seqlens_q, batch.max_seqlen_q,
                                             batch.max_seqlen_q, scale, /*causal=*/true);
    case AttentionBatch::Kind::kPrefixPrefill:
      return kernels::paged_prefill_attention(q, cache.k(layer), cache.v(layer), batch.cu_seqlens_q,
                                              batch.block_tables, batch.seq_lens, batch.max_seqlen_q, scale);
    case AttentionBatch::Kind::kDecode:
      return kernels::paged_decode_attention(q, cache.k(layer), cache.v(layer), batch.block_tables, batch.seq_lens,
                                             batch.max_seq_len, scale);
    case AttentionBatch::Kind::kMixed: {
      const int64_t p = batch.prefill_rows, rows = q.size(0) - p;
      const at::Tensor fresh = kernels::flash_attention_varlen(
          q.narrow(0, 0, p), k.narrow(0, 0, p), v.narrow(0, 0, p), batch.cu_seqlens_q, batch.cu_seqlens_q,
          batch.max_seqlen_q, batch.max_seqlen_q, scale, /*causal=*/true);
      const at::Tensor running = kernels::paged_decode_attention(q.narrow(0, p, rows), cache.k(layer), cache.v(layer),
                                                                 batch.block_tables, batch.seq_lens,
                                                                 batch.max_seq_len, scale);
      return at::cat({fresh, running});
    }
  }
  throw Error("attention: unknown batch kind");
}

at::Tensor LanguageModel::attention(int64_t layer, const Layer& l, const at::Tensor& x, const at::Tensor& positions,
                                    const AttentionBatch& batch, nn::KvCache& cache) const {
  const int64_t t = x.size(0), d = config_.head_dim();
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  const std::vector<at::Tensor> qkv = l.qkv(x);
  // Views of the projections: q and k are rotated in place and k and v written to the cache by one
  // kernel launch, then read by attention.
  at::Tensor q = qkv[0].view({t, heads, d});
  at::Tensor k = qkv[1].view({t, kv_heads, d});
  const at::Tensor v = qkv[2].view({t, kv_heads, d});
  kernels::multi_axis_rotary_and_write_kv_(q, k, v, positions, config_.rope_theta, config_.mrope_section,
                                           cache.k(layer), cache.v(layer), batch.slot_mapping);
  const at::Tensor out = attend(layer, q, k, v, batch, cache);
  return kernels::linear(out.view({t, heads * d}), l.o_w);
}

// The residual stream lives in `residual`; every RMSNorm after the first adds the previous
// sublayer's output to it (rounded to the model dtype) and normalises it, which is the reference's
// add-then-norm order. A part without the final norm ends with the plain add, the same add
// rounded the same way, and hands the residual stream on: the next part's first norm is then the
// norm this one would have fused.
at::Tensor LanguageModel::forward(const at::Tensor& hidden, const at::Tensor& positions,
                                  const AttentionBatch& batch, nn::KvCache& cache) const {
  const double eps = config_.rms_norm_eps;
  const at::Tensor pos = positions.to(hidden.device(), at::kLong).contiguous();
  at::Tensor residual = hidden.clone(at::MemoryFormat::Contiguous);  // updated in place
  if (layers_.empty()) return part_.lm_head ? kernels::rms_norm(residual, norm_, eps) : residual;
  at::Tensor h = kernels::rms_norm(residual, layers_.front().input_norm, eps);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    const at::Tensor attn = attention(static_cast<int64_t>(i), l, h, pos, batch, cache);
    h = kernels::fused_add_rms_norm(attn, residual, l.post_norm, eps);
    const std::vector<at::Tensor> gate_up = l.gate_up(h);
    const at::Tensor mlp = kernels::linear(kernels::silu_and_mul(gate_up[0], gate_up[1]), l.down_w);
    if (i + 1 == layers_.size() && !part_.lm_head) return residual.add_(mlp);
    h = kernels::fused_add_rms_norm(mlp, residual, i + 1 < layers_.size() ? layers_[i + 1].input_norm : norm_, eps);
  }
  return h;
}

// Decode batches go through our matrix-vector kernel on CUDA; on the CPU it is at::linear.
at::Tensor LanguageModel::logits(const at::Tensor& hidden) const {
  if (!part_.lm_head) throw Error("language model: this part holds no LM head");
  return kernels::linear(hidden, lm_head_);
}

}  // namespace qwenvl::nn
