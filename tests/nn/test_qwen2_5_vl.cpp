// Parity of the network with transformers 5.17.0 in fp32 on the CPU, on the fixture models:
// vision features, M-RoPE positions, prefill logits and greedy continuations (with and without the
// repetition penalty), one request at a time and all cases as one batch in non-contiguous,
// reused KV blocks. The worst relative errors are printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>

#include "model/config.h"
#include "model/weights.h"
#include "batch_run.h"
#include "network_reference.h"
#include "nn/kv_cache.h"
#include "nn/mrope_positions.h"
#include "nn/qwen2_5_vl.h"
#include "runtime/block_allocator.h"
#include "runtime/model_runner.h"

namespace qwenvl {
namespace {

using test::NetworkCase;
using test::ids_of;
using test::relative_error;
using Loaded = test::LoadedModel;

Loaded& load(const std::string& name) { return test::load_fixture_model(name); }

// fp32 against fp32: only summation order differs (SDPA vs our reference attention, conv3d vs a
// matrix product for the patch embedding).
constexpr double kTolerance = 1e-4;
constexpr int64_t kBlockSize = 16;

// A cache and allocator whose free list has been churned, so sequences get scattered, reused blocks.
struct ScrambledCache {
  nn::KvCache cache;
  runtime::BlockAllocator allocator;
  ScrambledCache(const model::TextConfig& text, int64_t blocks)
      : cache({text.num_hidden_layers, blocks, kBlockSize, text.num_key_value_heads, text.head_dim()}, at::kFloat,
              at::kCPU),
        allocator(blocks) {
    std::mt19937 rng(7);
    std::vector<int32_t> taken;
    allocator.allocate(blocks / 2, taken);
    std::shuffle(taken.begin(), taken.end(), rng);
    allocator.release(taken);
  }
  void reserve(runtime::SequenceSlot& slot, int64_t tokens) {
    const int64_t need = (tokens + kBlockSize - 1) / kBlockSize - static_cast<int64_t>(slot.blocks.size());
    ASSERT_TRUE(allocator.allocate(need, slot.blocks)) << "test cache too small";
  }
};

class NetworkParity : public ::testing::TestWithParam<std::string> {};

TEST_P(NetworkParity, VisionFeaturesMatch) {
  auto& m = load(GetParam());
  double worst = 0;
  for (const auto& c : test::load_network_cases(GetParam())) {
    for (const auto& [pixels, grid, features] :
         {std::tuple{"pixel_values", "image_grid_thw", "image_features"},
          std::tuple{"pixel_values_videos", "video_grid_thw", "video_features"}}) {
      if (!c.has(pixels)) continue;
      auto ours = m.net->encode_vision(c.t.at(pixels), test::grids_of(c.t.at(grid)));
      ASSERT_EQ(ours.sizes(), c.t.at(features).sizes()) << c.name;
      const double err = relative_error(ours, c.t.at(features));
      worst = std::max(worst, err);
      EXPECT_LT(err, kTolerance) << c.name << " " << features;
    }
  }
  std::printf("[%s] vision features: worst relative error %.3g\n", GetParam().c_str(), worst);
}

TEST_P(NetworkParity, MropePositionsMatch) {
  auto& m = load(GetParam());
  for (const auto& c : test::load_network_cases(GetParam())) {
    const auto p = test::prepared_prompt(c);
    auto ours = nn::mrope_positions({p.token_types, p.image_grids, p.video_grids, p.video_second_per_grid},
                                    m.files.model.vision.spatial_merge_size, m.files.model.vision.tokens_per_second);
    EXPECT_TRUE(at::equal(ours.positions, c.t.at("positions").to(at::kLong))) << c.name;
  }
}

using test::BatchRun;

// `cases` as one batch through the model runner, in scattered, reused KV blocks.
BatchRun run_batch(Loaded& m, const std::vector<const NetworkCase*>& cases, double penalty,
                   const std::string& reference_ids) {
  ScrambledCache kv(m.files.model.text, 512);
  runtime::ModelRunner runner(*m.net, kv.cache);
  test::BatchNetwork net;
  net.reserve = [&](runtime::SequenceSlot& slot, int64_t tokens) { kv.reserve(slot, tokens); };
  net.prefill = [&](const auto& prompts, const auto& slots) { return runner.prefill(prompts, slots); };
  net.decode = [&](const auto& tokens, const auto& slots) { return runner.decode(tokens, slots); };
  return test::run_cases_as_batch(net, cases, penalty, reference_ids);
}

TEST_P(NetworkParity, GreedyContinuationOneAtATime) {
  auto& m = load(GetParam());
  for (const auto& c : test::load_network_cases(GetParam())) {
    // Step 0 compares the prefill logits of the last prompt token.
    auto run = run_batch(m, {&c}, 1.0, "greedy_ids");
    EXPECT_EQ(run.ids[0], ids_of(c.t.at("greedy_ids"))) << c.name;
    EXPECT_LT(run.worst_error[0], kTolerance) << c.name;
    EXPECT_GE(run.ids[0].size(), 16u) << c.name;
    std::printf("[%s] %s: %zu greedy ids equal, worst logits relative error %.3g\n", GetParam().c_str(),
                c.name.c_str(), run.ids[0].size(), run.worst_error[0]);
  }
}

TEST_P(NetworkParity, RepetitionPenaltyAsTransformers) {
  auto& m = load(GetParam());
  for (const auto& c : test::load_network_cases(GetParam())) {
    auto run = run_batch(m, {&c}, 1.3, "penalty_ids");
    EXPECT_EQ(run.ids[0], ids_of(c.t.at("penalty_ids"))) << c.name;
  }
}

TEST_P(NetworkParity, MixedBatchIsOneForwardPerStage) {
  auto& m = load(GetParam());
  const auto cases = test::load_network_cases(GetParam());
  std::vector<const NetworkCase*> all;
  size_t longest = 0;
  for (const auto& c : cases) {
    all.push_back(&c);
    longest = std::max(longest, static_cast<size_t>(c.t.at("greedy_ids").numel()));
  }
  const auto& counters = m.net->counters();
  const int64_t vision0 = counters.vision, prefill0 = counters.prefill, decode0 = counters.decode;
  auto run = run_batch(m, all, 1.0, "greedy_ids");
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(run.ids[i], ids_of(cases[i].t.at("greedy_ids"))) << cases[i].name << " in a batch";
    EXPECT_LT(run.worst_error[i], kTolerance) << cases[i].name << " in a batch";
  }
  // One vision forward for every image and clip, one prefill, one decode forward per step.
  EXPECT_EQ(counters.vision - vision0, 1);
  EXPECT_EQ(counters.prefill - prefill0, 1);
  EXPECT_EQ(counters.decode - decode0, static_cast<int64_t>(longest) - 1);
}

INSTANTIATE_TEST_SUITE_P(FixtureModels, NetworkParity, ::testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) { return info.param == "tiny-a" ? "TinyA" : "TinyB"; });

}  // namespace
}  // namespace qwenvl
