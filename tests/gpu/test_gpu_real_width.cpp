// bf16 on the GPU at the real widths of Qwen2.5-VL-3B and -7B (random weights, 4 language and 4
// vision layers; scripts/device/make_real_width_models.py writes the directories and transformers'
// logits): one 448x448 image with "Describe this image.", the prefill's last row and 32 decode
// steps fed the same tokens. Our relative error against transformers in fp32 must stay within 1.5x
// transformers' own bf16 (sdpa) error, for the prefill and for the decode steps, and every layer must
// have run through our kernels (attention included: bf16, head dims 80 and 128).
//   QWENVL_REAL_WIDTH_MODELS=<dir holding 3b/ and 7b/>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "../nn/network_reference.h"
#include "gpu_test_util.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "nn/kv_cache.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/model_runner.h"

namespace qwenvl {
namespace {

constexpr double kMaxRatio = 1.5;

// ||a - b|| / ||b|| over all elements.
double norm_error(const at::Tensor& a, const at::Tensor& b) {
  auto x = a.to(at::kDouble), y = b.to(at::kDouble);
  return (x - y).norm().item<double>() / std::max(y.norm().item<double>(), 1e-30);
}

std::filesystem::path models_dir() {
  const char* dir = std::getenv("QWENVL_REAL_WIDTH_MODELS");
  return dir != nullptr ? std::filesystem::path(dir) : std::filesystem::path();
}

class RealWidth : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { QWENVL_SKIP_WITHOUT_GPU(); }
};

TEST_P(RealWidth, Bf16ErrorWithinTransformersOwn) {
  ASSERT_FALSE(models_dir().empty()) << "set QWENVL_REAL_WIDTH_MODELS (scripts/device/make_real_width_models.py)";
  const auto dir = models_dir() / GetParam();
  ASSERT_TRUE(std::filesystem::exists(dir / "reference.safetensors")) << dir;
  std::map<std::string, at::Tensor> ref;
  {
    auto file = model::SafetensorsFile::open(dir / "reference.safetensors");
    for (const auto& e : file->tensors()) ref[e.name] = file->tensor(e).clone();
  }
  const at::Device gpu(at::kCUDA, 0);
  auto files = model::load_model_files(dir);
  model::WeightLoadOptions options;
  options.dtype = at::kBFloat16;
  auto weights = model::Weights::load(dir, files.model, options);
  nn::Qwen25VL net(files.model, weights, at::kBFloat16, gpu);
  const auto& text = files.model.text;
  nn::KvCache cache({text.num_hidden_layers, 64, 64, text.num_key_value_heads, text.head_dim()}, at::kBFloat16,
                         gpu);
  runtime::ModelRunner runner(net, cache);

  runtime::PreparedPrompt prompt;
  auto ids = ref.at("input_ids").to(at::kLong).contiguous();
  prompt.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  auto types = ref.at("mm_token_type_ids").to(at::kLong).contiguous();
  for (int64_t i = 0; i < types.numel(); ++i) prompt.token_types.push_back(static_cast<uint8_t>(types.data_ptr<int64_t>()[i]));
  prompt.image_pixels = ref.at("pixel_values");
  prompt.image_grids = test::grids_of(ref.at("image_grid_thw"));
  const auto forced = ref.at("forced_ids").to(at::kLong).contiguous();
  const int64_t steps = forced.numel() - 1;  // the last forced id is never fed
  ASSERT_EQ(ref.at("logits_fp32").size(0), steps + 1);

  runtime::SequenceSlot slot;
  for (int32_t b = 0; b < 64; b += 3) slot.blocks.push_back(b);  // scattered blocks
  for (int32_t b = 1; b < 64; b += 3) slot.blocks.push_back(b);
  ASSERT_GE(static_cast<int64_t>(slot.blocks.size()), runner.blocks_for(static_cast<int64_t>(prompt.ids.size()) + steps));

  const auto before = kernels::dispatch_counts();
  std::vector<at::Tensor> rows{runner.prefill_on_device({&prompt}, {&slot}).to(at::kCPU)};
  for (int64_t s = 0; s < steps; ++s)
    rows.push_back(runner.decode_on_device({forced.data_ptr<int64_t>()[s]}, {&slot}).to(at::kCPU));
  const auto calls = kernels::dispatch_counts().since(before);
  const at::Tensor ours = at::cat(rows);  // [steps + 1, vocab]
  ASSERT_EQ(ours.sizes(), ref.at("logits_fp32").sizes());
  ASSERT_FALSE(at::isnan(ours).any().item<bool>());

  const at::Tensor f32 = ref.at("logits_fp32"), hf16 = ref.at("logits_bf16");
  const double ours_prefill = norm_error(ours[0], f32[0]), hf_prefill = norm_error(hf16[0], f32[0]);
  const double ours_decode = norm_error(ours.narrow(0, 1, steps), f32.narrow(0, 1, steps));
  const double hf_decode = norm_error(hf16.narrow(0, 1, steps), f32.narrow(0, 1, steps));
  const auto argmax_agree = [&](const at::Tensor& a) {
    return (a.argmax(-1) == f32.argmax(-1)).sum().item<int64_t>();
  };
  std::printf("[%s] bf16 relative error vs transformers fp32: prefill ours %.4g, transformers bf16 %.4g, ratio %.3f; "
              "decode (%lld steps) ours %.4g, transformers bf16 %.4g, ratio %.3f; argmax equal to fp32's: ours %lld/%lld, "
              "transformers bf16 %lld/%lld\n",
              GetParam().c_str(), ours_prefill, hf_prefill, ours_prefill / hf_prefill, static_cast<long long>(steps),
              ours_decode, hf_decode, ours_decode / hf_decode, static_cast<long long>(argmax_agree(ours)),
              static_cast<long long>(steps + 1), static_cast<long long>(argmax_agree(hf16)),
              static_cast<long long>(steps + 1));
  EXPECT_LE(ours_prefill, kMaxRatio * hf_prefill) << "prefill";
  EXPECT_LE(ours_decode, kMaxRatio * hf_decode) << "decode";
  test::expect_kernel_calls(calls, test::expected_calls(files.model, 1, steps + 1), /*attention_on_reference=*/false,
                            GetParam());
}

INSTANTIATE_TEST_SUITE_P(Widths, RealWidth, ::testing::Values("3b", "7b"),
                         [](const auto& info) { return "Qwen25VL" + info.param; });

}  // namespace
}  // namespace qwenvl
