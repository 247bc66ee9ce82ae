#include "nn/language_model.h"

#include <cmath>
#include <string>

#include "kernels/attention.h"
#include "model/weight_names.h"
#include "nn/layers.h"
#include "nn/rotary.h"
#include "qwenvl/error.h"

namespace qwenvl::nn {

LanguageModel::LanguageModel(const model::TextConfig& config, const model::Weights& weights,
                             at::ScalarType dtype, bool tie_word_embeddings)
    : config_(config), dtype_(dtype) {
  // The reference falls back to [16, 24, 24] when rope_parameters has no mrope_section.
  if (config_.mrope_section.empty()) config_.mrope_section = {16, 24, 24};
  if (config.hidden_act != "silu")
    throw Error("text config: hidden_act '" + config.hidden_act + "' is not supported (Qwen2.5-VL uses silu)");
  for (const auto& type : config.layer_types)
    if (type != "full_attention")
      throw Error("text config: layer type '" + type + "' (sliding-window attention) is not supported");
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    throw Error("text config: num_attention_heads is not a multiple of num_key_value_heads");
  auto w = [&](const std::string& name) { return weights.get(name).to(dtype); };
  const std::string lm = model::names::kLanguageModel;
  embed_ = w(model::names::kEmbedTokens);
  norm_ = w(lm + "norm.weight");
  lm_head_ = tie_word_embeddings ? embed_ : w(model::names::kLmHead);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = model::names::text_layer(i);
    layers_.push_back({w(p + "input_layernorm.weight"), w(p + "post_attention_layernorm.weight"),
                       w(p + "self_attn.q_proj.weight"), w(p + "self_attn.q_proj.bias"),
                       w(p + "self_attn.k_proj.weight"), w(p + "self_attn.k_proj.bias"),
                       w(p + "self_attn.v_proj.weight"), w(p + "self_attn.v_proj.bias"),
                       w(p + "self_attn.o_proj.weight"), w(p + "mlp.gate_proj.weight"),
                       w(p + "mlp.up_proj.weight"), w(p + "mlp.down_proj.weight")});
  }
}

at::Tensor LanguageModel::embed(const at::Tensor& ids) const {
  return embed_.index_select(0, ids.to(embed_.device()));
}

at::Tensor LanguageModel::attention(int64_t layer, const Layer& l, const at::Tensor& x, const CosSin& rope,
                                    const AttentionBatch& batch, runtime::KvCache& cache) const {
  const int64_t t = x.size(0), d = config_.head_dim();
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  auto q = apply_rotary_text(at::linear(x, l.q_w, l.q_b).view({t, heads, d}), rope).contiguous();
  auto k = apply_rotary_text(at::linear(x, l.k_w, l.k_b).view({t, kv_heads, d}), rope).contiguous();
  auto v = at::linear(x, l.v_w, l.v_b).view({t, kv_heads, d}).contiguous();
  kernels::write_kv_cache(k, v, cache.k(layer), cache.v(layer), batch.slot_mapping);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor out;
  switch (batch.kind) {
    case AttentionBatch::Kind::kPrefill:
      out = kernels::flash_attention_varlen(q, k, v, batch.cu_seqlens_q, batch.cu_seqlens_q, batch.max_seqlen_q,
                                            batch.max_seqlen_q, scale, /*causal=*/true);
      break;
    case AttentionBatch::Kind::kPrefixPrefill:
      out = kernels::paged_prefill_attention(q, cache.k(layer), cache.v(layer), batch.cu_seqlens_q,
                                             batch.block_tables, batch.seq_lens, batch.max_seqlen_q, scale);
      break;
    case AttentionBatch::Kind::kDecode:
      out = kernels::paged_decode_attention(q, cache.k(layer), cache.v(layer), batch.block_tables, batch.seq_lens,
                                            batch.max_seq_len, scale);
      break;
  }
  return at::linear(out.view({t, heads * d}), l.o_w);
}

at::Tensor LanguageModel::forward(const at::Tensor& hidden, const at::Tensor& positions,
                                  const AttentionBatch& batch, runtime::KvCache& cache) const {
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

at::Tensor LanguageModel::logits(const at::Tensor& hidden) const { return at::linear(hidden, lm_head_); }

}  // namespace qwenvl::nn
