#include "nn/language_model.h"

#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary.h"
#include "kernels/silu_and_mul.h"
#include "model/weight_names.h"
#include "nn/layers.h"
#include "nn/rotary.h"
#include "qwenvl/error.h"

namespace qwenvl::nn {

LanguageModel::LanguageModel(const model::TextConfig& config, const model::Weights& weights,
                             at::ScalarType dtype, bool tie_word_embeddings, at::Device device)
    : config_(config), dtype_(dtype), use_kernels_(device.is_cuda()) {
  // The reference falls back to [16, 24, 24] when rope_parameters has no mrope_section.
  if (config_.mrope_section.empty()) config_.mrope_section = {16, 24, 24};
  if (config.hidden_act != "silu")
    throw Error("text config: hidden_act '" + config.hidden_act + "' is not supported (Qwen2.5-VL uses silu)");
  for (const auto& type : config.layer_types)
    if (type != "full_attention")
      throw Error("text config: layer type '" + type + "' (sliding-window attention) is not supported");
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    throw Error("text config: num_attention_heads is not a multiple of num_key_value_heads");
  // On the CPU .to() keeps a tensor already in dtype (no copy); on a CUDA device it copies there.
  auto w = [&](const std::string& name) { return weights.get(name).to(device, dtype); };
  // Fused projections: the same products as rows of one matrix (concatenated before the copy).
  auto fused = [&](std::initializer_list<std::string> names) {
    std::vector<at::Tensor> parts;
    for (const auto& n : names) parts.push_back(weights.get(n));
    return at::cat(parts).to(device, dtype);
  };
  const std::string lm = model::names::kLanguageModel;
  embed_ = w(model::names::kEmbedTokens);
  norm_ = w(lm + "norm.weight");
  lm_head_ = tie_word_embeddings ? embed_ : w(model::names::kLmHead);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = model::names::text_layer(i);
    if (use_kernels_) {
      Layer l;
      l.input_norm = w(p + "input_layernorm.weight");
      l.post_norm = w(p + "post_attention_layernorm.weight");
      l.qkv_w = fused({p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"});
      l.qkv_b = fused({p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"});
      l.o_w = w(p + "self_attn.o_proj.weight");
      l.gate_up_w = fused({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
      l.down_w = w(p + "mlp.down_proj.weight");
      layers_.push_back(std::move(l));
      continue;
    }
    layers_.push_back({w(p + "input_layernorm.weight"), w(p + "post_attention_layernorm.weight"),
                       w(p + "self_attn.q_proj.weight"), w(p + "self_attn.q_proj.bias"),
                       w(p + "self_attn.k_proj.weight"), w(p + "self_attn.k_proj.bias"),
                       w(p + "self_attn.v_proj.weight"), w(p + "self_attn.v_proj.bias"),
                       w(p + "self_attn.o_proj.weight"), w(p + "mlp.gate_proj.weight"),
                       w(p + "mlp.up_proj.weight"), w(p + "mlp.down_proj.weight"), {}, {}, {}});
  }
}

at::Tensor LanguageModel::embed(const at::Tensor& ids) const {
  return embed_.index_select(0, ids.to(embed_.device()));
}

// Attends as the step's kind asks, the new keys and values already in the cache: among the new
// tokens (fresh prompts), to the paged cache (a continued prefix), or one query per sequence.
at::Tensor LanguageModel::attend(int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const AttentionBatch& batch, runtime::KvCache& cache) const {
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
  }
  throw Error("attention: unknown batch kind");
}

at::Tensor LanguageModel::attention(int64_t layer, const Layer& l, const at::Tensor& x, const CosSin& rope,
                                    const AttentionBatch& batch, runtime::KvCache& cache) const {
  const int64_t t = x.size(0), d = config_.head_dim();
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  auto q = apply_rotary_text(at::linear(x, l.q_w, l.q_b).view({t, heads, d}), rope).contiguous();
  auto k = apply_rotary_text(at::linear(x, l.k_w, l.k_b).view({t, kv_heads, d}), rope).contiguous();
  auto v = at::linear(x, l.v_w, l.v_b).view({t, kv_heads, d}).contiguous();
  kernels::write_kv_cache(k, v, cache.k(layer), cache.v(layer), batch.slot_mapping);
  const at::Tensor out = attend(layer, q, k, v, batch, cache);
  return at::linear(out.view({t, heads * d}), l.o_w);
}

at::Tensor LanguageModel::attention_kernels(int64_t layer, const Layer& l, const at::Tensor& x,
                                            const at::Tensor& positions, const AttentionBatch& batch,
                                            runtime::KvCache& cache) const {
  const int64_t t = x.size(0), d = config_.head_dim();
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  const at::Tensor qkv = kernels::linear(x, l.qkv_w, l.qkv_b);  // [t, (heads + 2 kv_heads) d]
  // Strided views into the projection: rotated in place and written to the cache by one kernel
  // launch, then read by attention.
  at::Tensor q = qkv.narrow(1, 0, heads * d).view({t, heads, d});
  at::Tensor k = qkv.narrow(1, heads * d, kv_heads * d).view({t, kv_heads, d});
  const at::Tensor v = qkv.narrow(1, (heads + kv_heads) * d, kv_heads * d).view({t, kv_heads, d});
  kernels::multi_axis_rotary_and_write_kv_(q, k, v, positions, config_.rope_theta, config_.mrope_section,
                                           cache.k(layer), cache.v(layer), batch.slot_mapping);
  const at::Tensor out = attend(layer, q, k, v, batch, cache);
  return kernels::linear(out.view({t, heads * d}), l.o_w);
}

// The layers through the kernels: the residual stream lives in `residual`; every RMSNorm after the
// first adds the previous sublayer's output to it (rounded to the model dtype) and normalises it,
// which is the reference's add-then-norm order.
at::Tensor LanguageModel::forward_kernels(const at::Tensor& hidden, const at::Tensor& positions,
                                          const AttentionBatch& batch, runtime::KvCache& cache) const {
  const double eps = config_.rms_norm_eps;
  const at::Tensor pos = positions.to(hidden.device(), at::kLong).contiguous();
  at::Tensor residual = hidden.clone(at::MemoryFormat::Contiguous);  // updated in place
  if (layers_.empty()) return kernels::rms_norm(residual, norm_, eps);
  at::Tensor h = kernels::rms_norm(residual, layers_.front().input_norm, eps);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    const at::Tensor attn = attention_kernels(static_cast<int64_t>(i), l, h, pos, batch, cache);
    h = kernels::fused_add_rms_norm(attn, residual, l.post_norm, eps);
    const at::Tensor mlp = kernels::linear(kernels::silu_and_mul(kernels::linear(h, l.gate_up_w)), l.down_w);
    h = kernels::fused_add_rms_norm(mlp, residual, i + 1 < layers_.size() ? layers_[i + 1].input_norm : norm_, eps);
  }
  return h;
}

at::Tensor LanguageModel::forward(const at::Tensor& hidden, const at::Tensor& positions,
                                  const AttentionBatch& batch, runtime::KvCache& cache) const {
  if (use_kernels_) return forward_kernels(hidden, positions, batch, cache);
  const CosSin rope = mrope_cos_sin(positions.to(hidden.device()), config_.head_dim(), config_.rope_theta,
                                    config_.mrope_section, dtype_);
  at::Tensor x = hidden;
  const double eps = config_.rms_norm_eps;
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    const Layer& l = layers_[i];
    x = x + attention(i, l, rms_norm(x, l.input_norm, eps), rope, batch, cache);
    x = x + gated_mlp(rms_norm(x, l.post_norm, eps), l.gate_w, {}, l.up_w, {}, l.down_w, {});
  }
  return rms_norm(x, norm_, eps);
}

// Decode batches go through our matrix-vector kernel on CUDA; on the CPU it is at::linear.
at::Tensor LanguageModel::logits(const at::Tensor& hidden) const { return kernels::linear(hidden, lm_head_); }

}  // namespace qwenvl::nn
